#!/usr/bin/env python3
"""Writes tests/waf/benign.jsonl: benign requests in the shapes a Chinese government-services
portal really receives (form posts in Chinese, JSON with names, addresses and ID numbers, search
queries, file uploads, rich-text fields, API paging, static assets), in the CRS corpus's line
format so that the same tools read both. Deterministic (fixed seed): re-running gives the same
file. The values are synthetic (made-up people, valid-looking numbers), never real records."""
import json, random, urllib.parse as up, base64

random.seed(20261122)
SURN = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史黎贺顾毛郝龚邵万钱覃武戴孔汤庞樊兰殷施陶洪翟安颜倪严牛温芦季俞章鲁葛伍申尤毕聂柴焦向柳邢岳齐沿梅莫庄辛管祝左涂谷祁时舒耿牟卜路詹关苗凌费纪靳盛童欧甄项曲成游阳裴席卫查屈鲍位覃霍翁隋植甘景薄单包司柏宁柯阮桂闵欧阳上官司马诸葛"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国建华志强晓明海燕丹玉兰红梅文博子轩欣怡梓涵浩然一诺雨桐"
CITIES = [("北京市", "朝阳区"), ("上海市", "浦东新区"), ("广东省深圳市", "南山区"), ("浙江省杭州市", "西湖区"),
          ("四川省成都市", "武侯区"), ("湖北省武汉市", "洪山区"), ("江苏省南京市", "鼓楼区"), ("陕西省西安市", "雁塔区")]
ROADS = ["人民路", "解放大道", "中山北路", "建设路", "科技园南区", "文化路", "长安街", "滨江大道"]
SERVICES = ["社保缴费记录查询", "公积金提取", "居住证办理", "营业执照变更登记", "个人所得税汇算", "不动产登记",
            "出生医学证明", "新生儿落户", "退休养老金领取资格认证", "医保异地就医备案", "机动车驾驶证换证",
            "企业开办一件事", "工程建设项目审批", "残疾人两项补贴申请", "高龄津贴申领", "护照办理预约"]
SEARCH = ["社保 缴费 基数", "公积金 贷款 额度 计算", "how to select a district office", "drop-off point for documents",
          "union bank payment", "update my address", "order by date", "营业执照 年报 流程", "居住证 续签 条件",
          "delete account request", "insert card reader", "script for phone reservation", "alert 通知 订阅",
          "1+1 套餐", "O'Brien passport", "Smith & Sons Ltd.", "100% 报销", "C:\\Users 文件 上传 失败",
          "下载 申请表.pdf", "sleep clinic 医院", "where is the nearest police station", "table tennis venue booking",
          "shell 加油站 发票", "exec 管理 人员 证书", "cat 猫 领养 登记", "curl 卷发 店 营业执照", "wget 是什么",
          "error 404 页面", "<3 志愿者", "2024-03-01 至 2024-03-31", "A&B 公司", "#社区活动#", "50% off 惠民",
          "echo 回音 问题", "id 卡 丢失", "sudo 是什么意思", "PHP 培训 机构 资质", "java 工程师 职称 评审",
          "JavaScript 课程 补贴", "python 等级 考试", "SQL 数据库 管理员 证书", "docker 培训", "bin 垃圾 分类",
          "etc 高速 通行", "passwd 忘记 密码 怎么办", "windows 系统 安装 服务", "null 值 是什么", "true or false 判断题"]

def idcard():
    area = random.choice(["110105", "310115", "440305", "330106", "510107", "420111", "320106", "610113"])
    birth = f"{random.randint(1950, 2005)}{random.randint(1, 12):02d}{random.randint(1, 28):02d}"
    seq = f"{random.randint(0, 999):03d}"
    body = area + birth + seq
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(a) * b for a, b in zip(body, w)) % 11]
    return body + check

def name():
    return random.choice(SURN[:-10]) + "".join(random.choice(GIVEN) for _ in range(random.randint(1, 2)))

def phone():
    return random.choice(["138", "139", "150", "186", "177", "199"]) + f"{random.randint(0, 99999999):08d}"

def address():
    c, d = random.choice(CITIES)
    return f"{c}{d}{random.choice(ROADS)}{random.randint(1, 999)}号{random.randint(1, 30)}栋{random.randint(1, 3000)}室"

UA = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49 NetType/WIFI Language/zh_CN",
      "Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/118.0 Mobile Safari/537.36 AlipayClient/10.5.86",
      "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
      "okhttp/4.12.0", "Apache-HttpClient/5.2.1 (Java/17.0.9)", "python-requests/2.31.0"]

out = []
def add(kind, method, uri, body=None, ctype=None, extra=None):
    h = {"Host": "zwfw.example.gov.cn", "User-Agent": random.choice(UA), "Accept": "application/json, text/plain, */*",
         "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8", "Referer": "https://zwfw.example.gov.cn/portal/index.html",
         "Cookie": f"lang=zh-CN; _ga=GA1.3.{random.randint(10**8, 10**9)}.{random.randint(10**9, 2 * 10**9)}; theme=light"}
    if ctype:
        h["Content-Type"] = ctype
    h.update(extra or {})
    out.append({"id": f"gov-{kind}-{len(out) + 1}", "source": "menwei tests/waf/make_benign.py", "category": kind,
                "expect": "benign", "method": method, "uri": uri, "headers": h, "body": body,
                "meta": {"paranoia_level": 1, "version": "HTTP/1.1", "autocomplete": True}})

q = lambda d: up.urlencode(d)
for i in range(80):   # Chinese form posts
    add("form", "POST", "/api/apply/submit", q({"serviceName": random.choice(SERVICES), "applicantName": name(),
        "idCard": idcard(), "mobile": phone(), "address": address(), "remark": random.choice(
        ["请尽快办理，谢谢！", "材料已齐全；如有问题请来电。", "本人因工作原因无法到现场（委托他人）", "附件：身份证复印件、户口本首页",
         "O'Neil 先生代办", "联系时间：工作日 9:00-17:00", "数量：2 份；金额：1,000.00 元", "备注 - 无", "急！！！",
         "地址变更为 \"新地址\"", "邮箱 zhang.san@example.com", "网址 https://www.example.gov.cn/guide?id=12&tab=2"]),
        "agree": "on", "csrf_token": base64.urlsafe_b64encode(random.randbytes(24)).decode().rstrip("=")}),
        "application/x-www-form-urlencoded; charset=UTF-8")
for i in range(80):   # JSON with people
    rec = {"applicant": {"name": name(), "idCard": idcard(), "phone": phone(), "gender": random.choice(["男", "女"]),
           "birthDate": f"19{random.randint(50, 99)}-0{random.randint(1, 9)}-1{random.randint(0, 9)}",
           "address": {"province": random.choice(CITIES)[0], "detail": address(), "postcode": f"{random.randint(100000, 850000)}"}},
           "items": [{"code": f"SB{random.randint(10**9, 10**10)}", "amount": round(random.uniform(10, 5000), 2),
                      "period": f"2024{random.randint(1, 12):02d}"} for _ in range(random.randint(1, 4))],
           "family": [{"relation": random.choice(["配偶", "子女", "父母"]), "name": name(), "idCard": idcard()} for _ in range(random.randint(0, 3))],
           "comment": random.choice(["无", "请审核", "已上传附件 (见下)", "Tom's application – 代理", "a/b 两份材料", "<待补充>", "1 OR 2 均可"]),
           "agree": True, "page": {"no": 1, "size": 20}}
    add("json", "POST", f"/api/v2/cases?_t={random.randint(10**12, 10**13)}", json.dumps(rec, ensure_ascii=False), "application/json;charset=UTF-8",
        {"Authorization": "Bearer eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1LTEyMyJ9.sig"})
for s in SEARCH * 2:  # search queries
    add("search", "GET", "/search?" + q({"q": s, "page": random.randint(1, 5), "sort": random.choice(["relevance", "date_desc"]), "region": "440305"}))
for i in range(50):   # file uploads
    b = f"----WebKitFormBoundary{random.randint(10**9, 10**10)}"
    fname = random.choice(["身份证正面.jpg", "户口本首页.png", "申请表（签字版）.pdf", "营业执照副本.jpeg", "Scan_2024-05-01 10.32.11.pdf", "report (1).docx", "授权委托书.doc", "photo.HEIC"])
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"caseId\"\r\n\r\nC{random.randint(10**8, 10**9)}\r\n"
            f"--{b}\r\nContent-Disposition: form-data; name=\"desc\"\r\n\r\n{random.choice(SERVICES)} 附件 {name()}\r\n"
            f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{fname}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            f"{base64.b64encode(random.randbytes(300)).decode()}\r\n--{b}--\r\n")
    add("upload", "POST", "/api/files/upload", body, f"multipart/form-data; boundary={b}")
RICH = ["<p>尊敬的领导：</p><p>本人<strong>{n}</strong>，住址{a}，现申请{s}。</p><p>此致<br/>敬礼</p>",
        "<h2>情况说明</h2><ul><li>材料一：身份证</li><li>材料二：户口本</li></ul><p style=\"text-align: center;\">{n}</p>",
        "<p>附图：<img src=\"/upload/2024/05/{r}.png\" alt=\"现场照片\" width=\"300\"></p><p>地点：{a}</p>",
        "<table border=\"1\"><tr><td>姓名</td><td>{n}</td></tr><tr><td>电话</td><td>{p}</td></tr></table>",
        "<p>详见 <a href=\"https://www.example.gov.cn/notice/{r}.html\" target=\"_blank\">公告</a>，谢谢。</p>",
        "<p><span style=\"color: #e03e2d;\">重要：</span>请于 2024-06-30 前提交 &lt;补充材料&gt;。</p>",
        "<blockquote>引用：“{s}”的办理时限为 5 个工作日。</blockquote><p>— {n}</p>"]
for i in range(70):   # rich-text fields (editor HTML)
    html = random.choice(RICH).format(n=name(), a=address(), s=random.choice(SERVICES), p=phone(), r=random.randint(10**6, 10**7))
    if i % 2:
        add("richtext", "POST", "/api/letters", json.dumps({"title": "关于" + random.choice(SERVICES) + "的咨询", "content": html}, ensure_ascii=False), "application/json")
    else:
        add("richtext", "POST", "/api/letters/form", q({"title": "留言", "content": html}), "application/x-www-form-urlencoded")
for i in range(60):   # API paging and detail views
    add("api", "GET", random.choice([f"/api/v1/matters?page={random.randint(1, 30)}&size=20&deptCode=11010500{random.randint(0, 9)}&keyword={up.quote(random.choice(SERVICES))}",
        f"/api/v1/cases/{random.randint(10**9, 10**10)}/progress", f"/api/v1/users/me/messages?unread=true&since=2024-05-0{random.randint(1, 9)}T08:00:00%2B08:00",
        f"/api/v1/appointments?date=2024-06-{random.randint(10, 28)}&hall=%E5%B8%82%E6%B0%91%E4%B8%AD%E5%BF%83&slot=09:00-09:30",
        f"/api/v1/geo/reverse?lat=22.5{random.randint(1000, 9999)}&lng=113.9{random.randint(1000, 9999)}",
        f"/api/v1/export?format=xlsx&fields=name,idCard,mobile&filter=status%20eq%20%27done%27"]),
        extra={"X-Requested-With": "XMLHttpRequest"})
COMMON = [{"id": "5", "type": "set", "order": "desc", "sort": "id"}, {"env": "prod", "mode": "time", "cmd": "list"},
          {"path": "/docs/guide/a.pdf", "file": "report.pdf", "host": "www.example.gov.cn"},
          {"url": "https://www.gov.cn/zhengce/content.htm", "callback": "jQuery1124_1716", "_": "1716000000000"},
          {"q": "docker", "ls": "1", "ps": "note"}, {"name": "perf", "value": "passwd", "key": "ls"},
          {"date": "2024-05-01", "time": "09:30", "exec": "true", "system": "ios"},
          {"select": "all", "from": "2024-01-01", "to": "2024-12-31", "where": "beijing"}]
for i in range(40):   # common parameter names and short values
    add("params", "GET", "/api/v1/list?" + q(random.choice(COMMON)), extra={"X-Requested-With": "XMLHttpRequest"})
for i in range(40):   # static assets and pages
    add("static", "GET", random.choice(["/portal/index.html", f"/static/js/app.{random.randint(10**7, 10**8):x}.js", f"/static/css/main.css?v={random.randint(1, 99)}",
        "/favicon.ico", f"/static/img/banner-{random.randint(1, 9)}.webp", "/portal/guide/%E5%8A%9E%E4%BA%8B%E6%8C%87%E5%8D%97.html",
        "/robots.txt", f"/portal/news/{random.randint(1000, 9999)}.html?from=wechat&share=1"]),
        extra={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"})
for i in range(30):   # login and account forms
    add("login", "POST", "/auth/login", q({"username": random.choice(["zhangsan", "li.si", "wang_wu2024", phone(), "o'connor"]),
        "password": random.choice(["P@ssw0rd!2024", "abc#123$XYZ", "我的密码123", "a'b\"c;--d", "(secret)=1"]), "passwd": "x",
        "captcha": f"{random.randint(1000, 9999)}", "redirect": "/portal/home"}), "application/x-www-form-urlencoded")

with open(__file__.replace("make_benign.py", "benign.jsonl"), "w", encoding="utf-8") as f:
    for line in out:
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
print(len(out), "lines")
