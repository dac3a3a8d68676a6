//! The rule table. Each pattern rule reads normalised values (lower case, decoded) from the
//! places it names; ids are menwei's own, grouped by category the way the OWASP Core Rule Set
//! groups them (so a CRS user finds their bearings): 930 LFI, 931 RFI, 932 command injection,
//! 933 PHP, 934 generic (Node.js, SSRF, templates, prototype pollution), 941 XSS, 942 SQL,
//! 943 session fixation, 944 Java, 920 protocol, 921 protocol attacks, 922 multipart,
//! 913 scanners, 911 methods. Patterns are our own, written for the `regex` crate (linear time:
//! no backtracking, so no input can make a rule slow).

use crate::parse::Place;

/// Attack class of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Method,
    Scanner,
    Protocol,
    ProtocolAttack,
    Multipart,
    Lfi,
    Rfi,
    Rce,
    Php,
    Generic,
    Xss,
    Sqli,
    SessionFixation,
    Java,
}

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Category::Method => "method",
            Category::Scanner => "scanner",
            Category::Protocol => "protocol",
            Category::ProtocolAttack => "protocol-attack",
            Category::Multipart => "multipart",
            Category::Lfi => "lfi",
            Category::Rfi => "rfi",
            Category::Rce => "rce",
            Category::Php => "php",
            Category::Generic => "generic",
            Category::Xss => "xss",
            Category::Sqli => "sqli",
            Category::SessionFixation => "session-fixation",
            Category::Java => "java",
        }
    }

    pub const ALL: [Category; 14] = [
        Category::Method,
        Category::Scanner,
        Category::Protocol,
        Category::ProtocolAttack,
        Category::Multipart,
        Category::Lfi,
        Category::Rfi,
        Category::Rce,
        Category::Php,
        Category::Generic,
        Category::Xss,
        Category::Sqli,
        Category::SessionFixation,
        Category::Java,
    ];

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// Anomaly points a match adds, as in the CRS: critical 5, error 4, warning 3, notice 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Notice,
}

impl Severity {
    pub fn points(self) -> u32 {
        match self {
            Severity::Critical => 5,
            Severity::Error => 4,
            Severity::Warning => 3,
            Severity::Notice => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
        }
    }
}

/// Which form of the value a pattern reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Decoded, lower case.
    Text,
    /// Also comments removed and whitespace folded.
    Folded,
}

/// A regular-expression rule.
pub struct PatternRule {
    pub id: u32,
    pub category: Category,
    pub paranoia: u8,
    pub severity: Severity,
    pub places: u16,
    pub form: Form,
    pub pattern: std::borrow::Cow<'static, str>,
    pub what: &'static str,
}

// Place sets.
const PATH: u16 = Place::Path as u16;
const ARG: u16 = Place::Arg as u16;
const ARG_NAME: u16 = Place::ArgName as u16;
const COOKIE: u16 = Place::Cookie as u16;
const COOKIE_NAME: u16 = Place::CookieName as u16;
const UA: u16 = Place::UserAgent as u16;
const REFERER: u16 = Place::Referer as u16;
const HEADER: u16 = Place::Header as u16;
const BODY: u16 = Place::RawBody as u16;
const FILE: u16 = Place::FileName as u16;
/// Everything a client chooses freely: arguments and their names, cookies, raw bodies, file names.
const ARGS: u16 = ARG | ARG_NAME | COOKIE | COOKIE_NAME | BODY | FILE;
/// The above plus the request headers that carry free text.
const ARGS_HEADERS: u16 = ARGS | UA | REFERER | HEADER;

use Category as C;
use Form::{Folded, Text};
use Severity::{Critical, Error, Notice, Warning};

macro_rules! rule {
    ($id:expr, $cat:expr, $pl:expr, $sev:expr, $places:expr, $form:expr, $what:expr, $pat:expr) => {
        PatternRule {
            id: $id,
            category: $cat,
            paranoia: $pl,
            severity: $sev,
            places: $places,
            form: $form,
            what: $what,
            pattern: std::borrow::Cow::from($pat),
        }
    };
}

/// Unix commands an injected command line starts with.
const UNIX_CMDS: &str = r"(?:cat|tac|nl|head|tail|more|less|ls|dir|id|whoami|uname|ifconfig|ip|netstat|ps|pwd|env|printenv|set|echo|printf|wget|curl|fetch|lwp-download|nc|ncat|netcat|socat|telnet|ssh|scp|ftp|tftp|bash|sh|zsh|ksh|csh|tcsh|dash|ash|busybox|python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|node|nodejs|lua|awk|gawk|sed|find|xargs|chmod|chown|chattr|rm|mv|cp|dd|mkfifo|mknod|kill|killall|pkill|sleep|ping|nslookup|dig|host|whois|crontab|base64|xxd|od|hexdump|strings|gcc|cc|c89|c99|g\+\+|make|tar|zip|unzip|gzip|gunzip|bzip2|column|rev|time|timeout|nohup|sudo|su|passwd|useradd|usermod|shutdown|reboot|systemctl|service|mount|tee|touch|grep|egrep|fgrep|sort|uniq|wc|cut|tr|diff|file|stat|which|whereis|locate|history|alias|exec|eval|source|export|ansible[a-z-]*|chef-[a-z-]+|knife|puppet|docker|kubectl|cpulimit|rmt(?:-[a-z]+)?|bridge|fold|flock|base32|perf|trap|irb[0-9.]*|aa-[a-z-]+|visudo|cscli|nmap|tcpdump|vi|vim|nano|ed|script|expect|openssl|at|batch|jobs|nice|renice|env|ld|ldd|strace|gdb|objdump|readelf|install|ln|ls|dmesg|lsof|w|who|last|finger|getent|groups|hostname|cpan|pip|pip3|npm|gem|apt|apt-get|yum|dnf|rpm|dpkg|mail|sendmail|mutt|xterm|rsync|svn|git|bsdtar)";

#[rustfmt::skip]
pub fn pattern_rules() -> Vec<PatternRule> {
    let unix_chain = format!(r"(?:[;&|`\n]|\$\(|\|\||&&)\s*(?:\$[a-z_]+\s*)*(?:[a-z_]+=\S*\s+)*(?:/[a-z/]*/)?{UNIX_CMDS}(?:\s|$|[;&|<>`'\x22])");
    let prefixed = format!(r"(?:^|[;&|`])\s*(?:\$[a-z_]+\s*)*(?:time|strace|ltrace|nohup|nice|timeout\s+[0-9]+|sudo|xargs|watch|env|exec|eval|busybox|stdbuf\s+\S+)\s+{UNIX_CMDS}\b");
    let unix_start = format!(r"^\s*(?:[a-z_]+=\S*\s+)*(?:/[a-z/]*/)?{UNIX_CMDS}\s+(?:-{{1,2}}[a-z]|/|\./|~/|\$|<|>|\||\x22/|'/)");
    vec![
        // --- 913 scanners (User-Agent)
        rule!(913100, C::Scanner, 1, Critical, UA, Text, "security scanner user agent",
            r"(?:nikto|sqlmap|nmap|nessus|openvas|acunetix|netsparker|appscan|webinspect|w3af|arachni|dirbuster|gobuster|dirb/|wfuzz|ffuf|feroxbuster|masscan|zgrab|nuclei|wpscan|joomscan|havij|pangolin|jbrofuzz|grabber|whatweb|skipfish|paros|burp|zap/|owasp zap|httprint|sqlninja|bsqlbf|absinthe|brutus|hydra|medusa|fimap|commix|xsser|vega/|metis|webshag|nsauditor|morfeus|zmeu|crowdstrike|black widow|nasl|jaascois|mysqloit|floodgate|webvulnscan|x-scan|pmafind|\.nasl|struts-pwn|internet ninja|teh forest lobster)"),
        // --- 930 local file inclusion / traversal
        rule!(930100, C::Lfi, 1, Critical, PATH | ARGS | HEADER, Text, "path traversal",
            r"(?:^|[/\\=:\s'\x22;])\.{2,3}[/\\;]|[/\\]\.{2,3}(?:[/\\]|$)|\.\.;"),
        rule!(930120, C::Lfi, 1, Critical, PATH | ARGS, Text, "operating-system file access",
            r"(?:/etc/(?:passwd|shadow|group|hosts|issue|motd|crontab|sudoers|hostname|security/|ssh/|mysql/|nginx/|apache2?/|httpd/|php[0-9.]*/|init\.d|profile|bashrc|environment|fstab|resolv\.conf|inittab|master\.passwd|pwd\.db|spwd\.db)|/proc/(?:self|[0-9]+)/(?:environ|cmdline|fd|maps|mem|status|cwd|root|exe)|/proc/(?:version|cpuinfo|meminfo|mounts|net/|interrupts|partitions|sched_debug|kcore)|/sys/(?:class|kernel|devices|block|bus|firmware|module|power)|/var/log/|/var/(?:lib|run)/(?:mysql|php|sessions)|/root/|/home/[^/]+/\.|/usr/local/(?:etc|apache)|c:[/\\]+(?:windows|winnt|boot\.ini|inetpub|program files)|(?:^|[/\\])(?:boot\.ini|win\.ini|system\.ini|sam|ntuser\.dat)(?:$|\x00)|\\windows\\|/windows/win\.ini|web-inf/|meta-inf/|/\.?htpasswd|\.htaccess|/\.git/|/\.svn/|/\.hg/|/\.bzr/|/\.env(?:$|\.)|/\.ds_store|id_[rd]sa|authorized_keys|known_hosts|\.bash_history|\.mysql_history|\.ssh/|wp-config\.php|configuration\.php|localsettings\.php|\.aws/credentials|\.docker/config|\.kube/config|\.npmrc|\.pypirc|\.netrc|\.pgpass|/@fs/|/@id/|/\.(?:docker|kube|aws|ssh|gnupg|config/gcloud|azure)/|debug\.log$|/\.[a-z]+ignore$|\.sql(?:\.(?:zip|gz|bz2|7z|tar))?$)"),
        rule!(930140, C::Lfi, 1, Critical, PATH | FILE, Text, "AI assistant or tooling configuration file",
            r"(?:^|/)\.(?:claude|cursor|aider|cline|clinerules|continue|copilot|codeium|windsurf|roo|rovodev|a0proj|n8n|gemini|codex|augment|tabnine|kiro|zed|vscode|idea|github/copilot|mcp|opencode|plandex|junie|goose|amazonq|trae|qodo|openhands|devin|sourcegraph|cody)(?:/|\.|$)"),
        // --- 931 remote file inclusion
        rule!(931100, C::Rfi, 1, Critical, ARG, Text, "URL with an IP address as argument",
            r"^(?:file|ftps?|https?|php|data|zlib|expect|glob|phar|ssh2|rar|ogg|dict|gopher|ldap|jar)://(?:\[?[0-9a-f:.]+\]?|[0-9]+)(?::[0-9]+)?[/?#]"),
        rule!(931110, C::Rfi, 1, Critical, ARG | ARG_NAME, Text, "URL in a known include parameter",
            r"(?:include|require|_conf\[|path\]|absolute_path|_path|basepath|root_path|rootdir|mosconfig|page|inc|dir|template|skin|lang|theme|module|config)[^=]*=?\s*(?:ftps?|https?)://|^(?:ftps?|https?)://[^\s]*\.(?:php|txt|inc|gif|jpg)\?"),
        rule!(931120, C::Rfi, 1, Critical, ARG, Text, "URL ending in a question mark",
            r"^(?:file|ftps?|https?|php|data|dict|gopher)(?:://[^\s]*)?\?+$"),
        // --- 932 command injection
        rule!(932100, C::Rce, 1, Critical, ARGS | UA | REFERER, Folded, "Unix command after a separator",
            unix_chain.clone()),
        rule!(932230, C::Rce, 1, Critical, ARGS, Folded, "Unix command with a path or option argument",
            unix_start.clone()),
        rule!(932235, C::Rce, 1, Critical, ARGS, Folded, "command run through a prefix command",
            prefixed.clone()),
        rule!(932251, C::Rce, 1, Critical, ARG, Folded, "short Unix command as the whole value",
            r"^(?:whoami|ifconfig|ipconfig|netstat|uname|printenv)(?:\s+-[a-z]+)?\s*$|^(?:ls|ps|id|pwd|env|uname)\s+(?:-[a-z]+|/)"),
        rule!(932130, C::Rce, 1, Critical, ARGS, Text, "Unix shell expression",
            r"\$\([^)]*\)|\$\{[^}]+\}|\$\(\(|`[^`]+`|/(?:etc|bin|usr|var|tmp)/[a-z]*\[[!^]?[a-z0-9/]+\]|[a-z]\[[a-z0-9/]+\][a-z]|\$\{ifs\}|\$ifs\b|<\(\s*[a-z]|>\(\s*[a-z]|\$\[[^\]]*\]|/\[[^\]]*\][a-z]|/[a-z]*\[[a-z0-9]-[a-z0-9]\][a-z]*/|/[a-z]*\[[!^]?[a-z0-9/]+\][a-z]*/"),
        rule!(932140, C::Rce, 1, Critical, ARGS, Folded, "Windows FOR / IF command",
            r"(?:^|[&|;\s(])(?:for\s*(?:/[a-z]\s*(?:[a-z]:\\\S*\s+)?)*(?:\x22[^\x22]*\x22\s+)?%%?\S+\s+in\s*\(|if(?:\s+|\s*/i\s*)(?:not\s+)?(?:(?:exist|defined|errorlevel|cmdextversion)\s+\S+|(?:\x22[^\x22]*\x22|\{[^}]*\}|\([^)]*\)|\S+)\s*(?:==|equ|neq|lss|leq|gtr|geq)\s*\S+))"),
        rule!(932120, C::Rce, 1, Critical, ARGS, Folded, "PowerShell command",
            r"(?:invoke-(?:webrequest|expression|command|item|restmethod|wmimethod|shellcode|mimikatz)|iex\s*\(|\biwr\s|\biwmi\s|new-object\s+(?:net\.webclient|system\.net)|downloadstring\(|downloadfile\(|start-process|set-executionpolicy|-encodedcommand|powershell(?:\.exe)?\s+-|get-wmiobject|get-childitem\s+env:|\[system\.(?:convert|text\.encoding)\]::)"),
        rule!(932150, C::Rce, 1, Critical, ARGS, Folded, "Windows command",
            r"(?:^|[;&|`(\s])(?:cmd(?:\.exe)?\s*/[ck]|powershell|pwsh|certutil|bitsadmin|mshta|rundll32|regsvr32|wscript|cscript|regedit|reg\s+(?:add|query|delete)|net\s+(?:user|localgroup|share|use)|netsh|schtasks|wmic|taskkill|tasklist|systeminfo|ipconfig|bcdboot|bcdedit|vssadmin|wevtutil|icacls|cacls|attrib|xcopy|robocopy|type\s+[a-z]:\\|del\s+/|format\s+[a-z]:)(?:\s|$|\.exe|/)"),
        rule!(932170, C::Rce, 1, Critical, ARGS_HEADERS | PATH, Text, "Shellshock",
            r"\(\s*\)\s*\{"),
        rule!(932180, C::Rce, 1, Critical, FILE, Text, "upload of a system or configuration file name",
            r"(?:^|[/\\])(?:\.htaccess|\.htpasswd|\.htdigest|web\.config|\.user\.ini|php\.ini|\.bashrc|\.bash_profile|\.profile|\.zshrc|\.boto|\.npmrc|\.env|\.git|wp-config|settings\.php|config\.ya?ml|config\.php|configuration\.php|localsettings\.php|mtrr|acpi|passwd|shadow|authorized_keys|id_rsa|crontab|sudoers)"),
        rule!(932200, C::Rce, 1, Critical, ARGS, Text, "shell evasion (quotes, backslashes, globs inside a command)",
            r"(?:^|[;&|`\s])(?:[a-z]*(?:'|\x22|\\)[a-z]*){2,}\s+[-/]|/[a-z?*]+/[a-z?*]*[?*][a-z?*]*\s|\b(?:c\\?a\\?t|w\\?g\\?e\\?t|c\\?u\\?r\\?l)\b\s*[^\s]*/[^\s]*\\"),
        rule!(932160, C::Rce, 1, Critical, ARGS, Folded, "Unix binary path or shell variable",
            r"(?:^|[\s;&|`'\x22=(])/?(?:usr/)?(?:local/)?s?bin/[a-z]|\$shell\b|\$\{?(?:ifs|path|home|shell)\}?[^a-z]"),
        rule!(932236, C::Rce, 1, Critical, ARG, Folded, "administration tool invoked",
            r"^\s*(?:ansible-[a-z]+|chef-[a-z]+|visudo|cscli|rmt-[a-z]+|aa-[a-z-]+|chpasswd|setenforce|modprobe|insmod)(?:\s|$)|^\s*(?:ansible|knife|perf|rmt|kubectl|docker|crontab|useradd|usermod|passwd|systemctl|iptables|nft)\s+(?:-|/)"),
        rule!(932270, C::Rce, 1, Critical, ARGS, Text, "tilde expansion",
            r"^~[+-]"),
        rule!(932280, C::Rce, 1, Critical, ARGS, Text, "brace expansion",
            r"\{[^\s{}]*,[^\s{}]*\}"),
        rule!(932330, C::Rce, 1, Critical, ARGS | BODY, Text, "shell history expansion",
            r"!-[0-9]+"),
        rule!(932340, C::Rce, 1, Critical, ARGS_HEADERS, Text, "command after a separator (short commands)",
            r"[;&|`]\s*(?:ps|env|id|w|ls|set|who|uname|ifconfig)(?:\s|$|;)"),
        rule!(932175, C::Rce, 1, Critical, ARGS, Folded, "alias definition",
            r"(?:^|[;&|\s])alias\s+(?:[+-]\S*\s+)*[^\s=]+="),
        rule!(932250, C::Rce, 1, Critical, ARGS, Folded, "interpreter with -c / -e",
            r"(?:^|[;&|`\s,])(?:sh|bash|zsh|ksh|csh|dash|python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|node|lua)(?:\s+-[a-z]*\s*)*\s*[,\s]-[ce]\b|-wrapper\s+sh"),
        rule!(932260, C::Rce, 1, Critical, ARGS, Folded, "interpreter invocation",
            r"(?:^|[;&|`(])\s*(?:python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|node|lua[0-9.]*|tclsh|gdb|awk|gawk|sh|bash|irb[0-9.]*)(?:\$[a-z]+)?(?:\s+(?:-|/|\./|~)|\s*(?:<<<|\)\s*[0-9]*[<>]))|^(?:python|perl|ruby|php|lua)[0-9][0-9.]*\s|\|\s*(?:sh|bash|zsh|ksh)\b|\|\s*rev\s*\||\(\s*(?:sh|bash)\s*\)"),
        // --- 933 PHP
        rule!(933100, C::Php, 1, Critical, ARGS_HEADERS, Text, "PHP open tag",
            r"<\?(?:php|=|\s|$)|\[\\?/?php\]|\{/?php\}|\?>\s*$"),
        rule!(933110, C::Php, 1, Critical, FILE, Text, "upload of a PHP script",
            r"\.(?:php[0-9]*|phps|phtml|phar|pht|phpt|inc|shtml?)[.\s]*$"),
        rule!(933120, C::Php, 1, Critical, ARGS, Text, "PHP configuration directive",
            r"(?:^|[^a-z])(?:allow_url_(?:fopen|include)|auto_(?:append|prepend)_file|disable_functions|open_basedir|safe_mode|register_globals|magic_quotes_gpc|display_errors|error_log|expose_php|file_uploads|upload_tmp_dir|session\.[a-z_.]+|opcache\.[a-z_.]+|zend\.[a-z_.]+|pcre\.[a-z_.]+|assert\.[a-z_.]+|mail\.[a-z_.]+|phar\.[a-z_.]+|include_path|memory_limit|max_execution_time|extension_dir|sendmail_path|suhosin\.[a-z_.]+|xdebug\.[a-z_.]+|apc\.[a-z_.]+|mbstring\.[a-z_.]+|engine|extension|precision|smtp|smtp_port|unserialize_max_depth|serialize_precision|short_open_tag|asp_tags|output_buffering|user_ini\.[a-z_.]+|realpath_cache_[a-z_]+|max_input_[a-z_]+|post_max_size|upload_max_filesize|default_charset|auto_detect_line_endings|default_socket_timeout|html_errors|log_errors|track_errors|variables_order|request_order|enable_dl|cgi\.[a-z_.]+|fastcgi\.[a-z_.]+|date\.[a-z_.]+|filter\.[a-z_.]+|iconv\.[a-z_.]+|intl\.[a-z_.]+|mysqli?\.[a-z_.]+|pdo_[a-z_.]+|sqlite3?\.[a-z_.]+)\s*="),
        rule!(933130, C::Php, 1, Critical, ARGS, Text, "PHP superglobal",
            r"\$_(?:get|post|cookie|server|request|files|env|session)\b|\$globals\b|\$http_(?:get|post|cookie|server|raw_post_data)_vars|php://input"),
        rule!(933135, C::Php, 1, Critical, ARGS, Text, "PHP variable variable",
            r"\$\s*\{\s*(?:['\x22]|\$|[a-z_][a-z0-9_]*\s*\})"),
        rule!(933140, C::Php, 1, Critical, ARGS | BODY, Text, "PHP stream wrapper",
            r"(?:php|phar|zlib|glob|data|expect|input|ssh2(?:\.[a-z]+)?|rar|ogg|zip|compress\.(?:zlib|bzip2))://"),
        rule!(933150, C::Php, 1, Critical, ARGS | PATH, Folded, "high-risk PHP function name",
            r"(?:base64_decode|base64_encode|str_rot13|gzinflate|gzuncompress|gzdecode|gzencode|bzdecompress|zlib_decode|call_user_func(?:_array)?|create_function|preg_replace|file_get_contents|file_put_contents|show_source|highlight_file|phpinfo|passthru|shell_exec|proc_open|pcntl_exec|move_uploaded_file|unserialize|var_dump|print_r|parse_str|mb_ereg_replace|register_shutdown_function|register_tick_function|include_once|require_once|posix_[a-z]+|escapeshellcmd|escapeshellarg|set_time_limit|curl_exec|fsockopen|pfsockopen|stream_socket_client|get_defined_functions|get_defined_vars|get_defined_constants|func_get_args|array_map|array_filter|array_walk|ob_start|is_array|is_string|strip_tags|intval|filegroup|fileowner|fileperms|file_exists|is_file|is_dir|readfile|fpassthru|ini_set|ini_get|ini_restore|putenv|getenv|symlink|hex2bin|bin2hex|str_replace|strrev|implode|explode|sprintf|vsprintf|htmlspecialchars|addslashes|stripslashes|iterator_apply|forward_static_call|function_exists|method_exists|class_exists|get_class|assert_options|spl_autoload_register|libxml_disable_entity_loader|simplexml_load_string|ftp_connect|escapeshell[a-z]+|proc_[a-z]+|pcntl_[a-z]+|opendir|readdir|scandir|fopen|fwrite|fputs|fread|fgets|tempnam|tmpfile|unlink|rmdir|popen|shell_exec|curl_[a-z_]+|substr|unpack)[\s=]*\(\s*[^\s]"),
        rule!(933151, C::Php, 1, Critical, ARGS | PATH, Folded, "PHP function call with no arguments",
            r"(?:base64_decode|gzinflate|gzuncompress|gzdecode|bzdecompress|zlib_decode|call_user_func|fsockopen|is_array|intval|phpinfo|get_defined_[a-z]+|shell_exec|passthru|curl_[a-z_]+|substr|unpack)[\s=]*\(\s*\)"),
        rule!(933160, C::Php, 1, Critical, ARGS, Folded, "PHP function call",
            r"\b(?:chr|exec|eval|system|assert|fopen|passthru|popen|proc_open|shell_exec|pcntl_exec|readfile|include|require|unserialize|create_function|call_user_func|base64_decode|gzinflate|str_rot13|file|opendir|readdir|mail|header|phpinfo|printf|print|echo)\s*\(|\(\s*['\x22]?(?:system|exec|passthru|shell_exec|assert|eval)\s*['\x22]?\s*\)\s*\(|\(\s*[a-z.'\x22()]+\s*\.\s*[a-z.'\x22()]+\)\s*\(|\b(?:strip_tags|intval|filegroup|is_array|fopen|exec|system|eval|chr|mail|include|require)\s*\("),
        rule!(933161, C::Php, 1, Critical, ARGS, Text, "PHP call hidden behind line comments",
            r"(?:\b(?:exec|eval|system|assert|passthru|shell_exec|popen|proc_open)|\$[a-z_0-9]+)[\s\x0b]*(?:(?:(?:#|//)[^\n]*\n|/\*.*?\*/)[\s\x0b]*(?:\[[^\]]*\][\s\x0b]*)*)+\("),
        rule!(933170, C::Php, 1, Critical, ARGS | COOKIE | BODY | HEADER, Text, "PHP serialized object",
            r"(?:^|[;{\s])[oc]:\+?[0-9]+:\x22[a-z_\\][a-z0-9_\\]*\x22:[0-9]+:\{"),
        rule!(933180, C::Php, 1, Critical, ARGS, Folded, "PHP variable function call",
            r"\$+[a-z_0-9{}\[\]$@'\x22]*(?:\s*(?:\[[^\]]*\]|\{[^}]*\}))*\s*\(|\$\{\$"),
        rule!(933190, C::Php, 1, Critical, ARGS, Text, "PHP closing tag",
            r"\?>(?:$|[\s<])"),
        rule!(933200, C::Php, 1, Critical, ARGS | PATH, Text, "PHP archive or compression wrapper",
            r"(?:phar|compress\.(?:zlib|bzip2)|zip|rar|glob|expect)://"),
        rule!(933210, C::Php, 1, Critical, ARGS, Folded, "PHP string-built function call",
            r"\(\s*(?:\(?\s*['\x22]?[a-z_]+['\x22]?\s*\)?\s*\.\s*)+\(?\s*['\x22]?[a-z_]+['\x22]?\s*\)?\s*\)\s*\(|\(\s*(?:system|exec|passthru|shell_exec|assert|eval|phpinfo)\s*\)\s*\(|\(\s*string\s*\)|\[\s*['\x22]?[a-z_]+['\x22]?\s*\]\s*(?:\[\s*[0-9]+\s*\]\s*)+\)?\s*(?:\{[^}]*\}\s*)?\(|\(\s*\$?[a-z_]+\s*\)\s*(?:\[\s*[0-9]+\s*\]\s*)*\(\s*['\x22a-z]|(?:^|;|return)\s*['\x22][a-z_\\0-9]+['\x22]\s*\(|define\s*\(\s*['\x22][a-z_]+['\x22]\s*,|\(\s*\[\s*['\x22][a-z_]+['\x22]\s*\]\s*\)\s*\["),
        rule!(933220, C::Php, 1, Critical, FILE, Text, "upload of a PHP session file",
            r"(?:^|[/\\\s])sess_[a-z0-9,-]{10,}"),
        // --- 934 generic
        rule!(934100, C::Generic, 1, Critical, ARGS | HEADER, Text, "Node.js injection",
            r"_\$\$nd_func\$\$_|__js_function|\bconstructor\s*\.\s*constructor\b|child_process|process\s*\.\s*(?:mainmodule|binding|env|exit|kill|dlopen)|require\s*\(\s*['\x22`][a-z_]+|\beval\s*\(|new\s+function\s*\(|console\s*\.\s*(?:log|info|warn|error|dir)\s*\(|\bfunction\s*\(\s*\)\s*\{|\$\d+:[a-z]+|resolved_model|module\s*\.\s*exports\s*=|(?:process|console|require|global|globalthis)\s*\[|xyqktkrfrlvoqyqk|x1n0tkrfrlvoqyqk"),
        rule!(934110, C::Generic, 1, Critical, ARGS | HEADER, Text, "server-side request to cloud metadata or internal address",
            r"169\.254\.169\.254|metadata\.packet\.net|metadata\.oraclecloud|\bfd00:ec2::254|metadata\.google\.internal|metadata\.azure\.com|100\.100\.100\.200|metadata\.tencentyun\.com|169\.254\.170\.2|\[?::ffff:(?:127|169\.254|a9fe)|0x7f000001|\b2130706433\b|\b0177\.0+\.0+\.0*1\b|\b017700000001\b|(?:https?|gopher|dict|ftp|ldap):/*(?:127\.|0\.0\.0\.0|\[::1?\]|localhost\b|10\.|192\.168\.|172\.(?:1[6-9]|2[0-9]|3[01])\.)"),
        rule!(934130, C::Generic, 1, Critical, ARGS | BODY, Text, "JavaScript prototype pollution",
            r"__proto__|constructor\s*\]?\s*\[\s*['\x22]?prototype|constructor\s*\.\s*prototype"),
        rule!(934150, C::Generic, 1, Critical, ARGS | BODY | HEADER, Text, "Ruby injection",
            r"\b(?:process\.spawn|kernel\.(?:exec|system|spawn|open)|io\.popen|open3\.|\.instance_eval|\.class_eval|object\.const_get|\.send\s*\(\s*:)"),
        rule!(934160, C::Generic, 1, Critical, ARGS, Folded, "Node.js denial of service (endless loop)",
            r"while\s*\(\s*[!+\-~(\s]*(?:true|false|this|infinity|nan|null|undefined|new\s+[a-z]+|[0-9.]+|''|\x22\x22|``|\[\]|\{\})[\s)]*\)|d2hpbguo|xhuwmdc3xhuwmdy4awxl"),
        rule!(934170, C::Generic, 1, Critical, ARGS, Text, "data: URL",
            r"^\s*data:(?:text|application)/[a-z0-9.+-]*"),
        rule!(934190, C::Generic, 1, Critical, ARGS | COOKIE, Text, "server-side request to a local host name",
            r"^(?:[a-z]+://)?(?:localhost(?:4|6)?(?:\.localdomain(?:4|6)?)?|ipv6-localhost|ip6-localhost|ip6-loopback|ipv6-loopback|kubernetes\.docker\.internal|[a-z0-9.-]*\.svc\.cluster\.local|host\.docker\.internal|host\.containers\.internal|gateway\.docker\.internal|kubernetes\.default(?:\.svc)?|localtest\.me|lvh\.me|vcap\.me|nip\.io|0\.0\.0\.0|127\.0\.0\.1|\[::1\])(?::[0-9]+)?(?:/|$)"),
        rule!(934200, C::Generic, 1, Critical, ARGS | BODY, Text, "server-side template injection",
            r"\{\{.*(?:[*+/-]|__|\.|\(|\|).*\}\}|\$\{.*(?:[*+/]|\.|\().*\}|<%=?.*%>|\{%.*%\}|#\{.*\}|\*\{.*\}"),
        // --- 941 XSS
        rule!(941110, C::Xss, 1, Critical, ARGS_HEADERS | PATH, Text, "script tag",
            r"<\s*/?\s*(?:[a-z]+\s*:\s*)?script\b|<\s*script"),
        rule!(941120, C::Xss, 1, Critical, ARGS_HEADERS, Text, "event handler attribute",
            r"(?:^|[\s\x22'/<;`])on[a-z]{3,}\s*=|\bon(?:error|load|click|mouseover|focus|blur|select|change|submit|toggle|pageshow|animationstart|begin|readystatechange)\s*="),
        rule!(941130, C::Xss, 1, Critical, ARGS_HEADERS, Text, "XSS through XML namespaces or attributes",
            r"!entity\s|xmlns(?::[a-z]+)?\s*=|xlink:href|<\?xml|xsi:|<!entity|<!doctype|<!\[cdata\[|\bpattern\s*=\s*\x22|\bformaction\s*=|\bsrcdoc\s*="),
        rule!(941140, C::Xss, 1, Critical, ARGS_HEADERS, Text, "script URL in CSS",
            r"url\s*\(\s*['\x22]?\s*(?:javascript|vbscript|data)|expression\s*\(|behavior\s*:|-moz-binding"),
        rule!(941160, C::Xss, 1, Critical, ARGS_HEADERS | PATH, Text, "HTML injection",
            r"<\s*/?\s*(?:[a-z]+:)?(?:script|iframe|frame|frameset|object|embed|applet|meta|link|style|base|form|svg|math|isindex|keygen|xmp|plaintext|vmlframe|xss|import|animate|set|handler|listener|layer|ilayer|bgsound|xml|dialog)\b|<\s*[a-z](?:\s+[a-z]){2,}|<\??\s*import\s*implementation"),
        rule!(941170, C::Xss, 1, Critical, ARGS_HEADERS, Text, "script URL",
            r"(?:javascript|vbscript|livescript|mocha)\s*:|data\s*:\s*(?:text/html|application/(?:x-)?javascript|image/svg)|data\s*:\s*,"),
        rule!(941180, C::Xss, 1, Critical, ARGS, Text, "DOM access",
            r"document\s*\.\s*(?:cookie|write|domain|location|body|queryselector|getelementby|createelement|forms|head|documentelement)|window\s*\.\s*(?:location|open|name)|\.(?:innerhtml|outerhtml)\s*=|\blocalstorage\b|\bsessionstorage\b"),
        rule!(941190, C::Xss, 1, Critical, ARGS, Text, "CSS import or style injection",
            r"@\\?i\\?m\\?p\\?o\\?r\\?t|<\s*style|style\s*=\s*['\x22][^'\x22]*(?:expression|javascript|position\s*:\s*(?:absolute|fixed)|behavior)"),
        rule!(941200, C::Xss, 1, Critical, ARGS, Text, "VML frame",
            r"<\s*[a-z]?\s*:\s*(?:vmlframe|image|rect|fill|shape)"),
        rule!(941210, C::Xss, 1, Critical, ARGS, Text, "obfuscated javascript: scheme",
            r"j\W*a\W*v\W*a\W*s\W*c\W*r\W*i\W*p\W*t\W*:|v\W*b\W*s\W*c\W*r\W*i\W*p\W*t\W*:"),
        rule!(941181, C::Xss, 1, Critical, ARGS | BODY, Text, "server-side include directive",
            r"<!--\s*#\s*(?:exec|include|set|echo|config|printenv|fsize|flastmod|if|elif)\b"),
        rule!(941360, C::Xss, 1, Critical, ARGS, Text, "JSFuck",
            r"!\s*!?\s*\[\s*\]|\[\s*\]\s*\[\s*\(|\(\s*!\s*\["),
        rule!(941370, C::Xss, 1, Critical, ARGS, Folded, "DOM object through comments",
            r"(?:document|window|self|top|parent|frames|globalthis)\s*\)?\s*(?:\.\s*['\x22]?(?:cookie|location|domain|write|eval)|\[\s*['\x22`])"),
        rule!(941390, C::Xss, 1, Critical, ARGS, Text, "JavaScript method call",
            r"\b(?:settimeout|setinterval|setimmediate|execscript|alert|prompt|confirm|fromcharcode|atob|btoa|eval|globalthis|reflect\.apply)\s*\(|\.(?:call|apply|bind)\s*\(|\bimport\s*\("),
        rule!(941400, C::Xss, 1, Critical, ARGS, Folded, "JavaScript call without parentheses",
            r"\.\s*(?:call|apply|bind)\s*`|\$\{\s*[a-z]+\s*\}|`\s*\$\{"),
        rule!(941310, C::Xss, 1, Critical, ARGS, Text, "US-ASCII or UTF-7 encoded tags",
            r"\\xbc.{0,40}\\xbe|\u{bc}\s*/?\s*[a-z]+\s*\u{be}|\+adw-|\+ad4-|\xbc.{0,30}\xbe"),
        // --- 942 SQL
        rule!(942140, C::Sqli, 1, Critical, ARGS, Folded, "database schema name",
            r"\b(?:information_schema|pg_catalog|pg_shadow|pg_user|pg_database|mysql\.(?:user|db)|sysobjects|syscolumns|sysusers|sys\.(?:tables|objects|columns|databases)|msysaccessobjects|msysobjects|sqlite_master|sqlite_schema|all_tables|user_tables|dba_users|user_objects|master\.\.|tempdb|northwind|msdb|xp_cmdshell|sp_executesql|sp_oacreate|sp_makewebtask|sp_password|v\$version|dual\b|db_name|schema_name|table_name|column_name|current_database|sqlite_[a-z_]+)"),
        rule!(942151, C::Sqli, 1, Critical, ARGS, Folded, "SQL function call",
            r"\b(?:abs|acos|ascii|asin|atan2?|avg|benchmark|bin|bit_(?:and|or|xor|length)|cast|ceil(?:ing)?|char(?:_length|acter_length)?|chr|coalesce|concat(?:_ws)?|convert|cos|cot|count|crc32|curdate|current_user|database|datediff|dbms_[a-z_.]+|decode|degrees|elt|encode|exp|export_set|extractvalue|field|find_in_set|floor|format|found_rows|from_base64|from_unixtime|get_lock|greatest|group_concat|hex|if|ifnull|iif|inet_aton|inet_ntoa|insert|instr|is_srvrolemember|isnull|json_[a-z]+|last_insert_id|lcase|least|left|length|ln|load_file|locate|log|log10|log2|lower|lpad|ltrim|make_set|master_pos_wait|md5|mid|name_const|nullif|oct|ord|password|pg_[a-z_]+|pi|position|pow|power|quote|radians|rand|regexp_[a-z]+|release_lock|repeat|replace|reverse|right|round|row_count|rpad|rtrim|schema|sha1?|sha2|sign|sin|sleep|soundex|space|sqrt|std|stddev|strcmp|subdate|substr|substring|substring_index|sum|sysdate|system_user|tan|to_base64|trim|truncate|ucase|uncompress|unhex|unistr|updatexml|upper|user|utl_[a-z_.]+|uuid|version|waitfor|xmltype|xp_[a-z]+|compress|sqlite_[a-z_]+|db_name|now|starts_with|jsonb?_[a-z_]+|div|lo_(?:get|import|export|open|put|from_bytea))[\s=\\]*\("),
        rule!(942160, C::Sqli, 1, Critical, ARGS | PATH, Folded, "blind SQL (sleep / benchmark)",
            r"\b(?:sleep|pg_sleep|benchmark|dbms_lock\.sleep|dbms_pipe\.receive_message)\s*\(|waitfor\s+(?:delay|time)\s"),
        rule!(942190, C::Sqli, 1, Critical, ARGS, Folded, "SQL code execution or union",
            r"\bexec(?:ute)?\s+(?:master\.|xp_|sp_|\(|@|immediate)|\bunion\b[\s(]*(?:all\s+|distinct\s+)?[\s(]*select\b|['\x22`]\s*;\s*(?:select|insert|update|delete|drop|create|alter|exec|declare|shutdown)\b|['\x22`]\s*[!|&]+\s*['\x22`]|\bselect\s+(?:iif|if|case|char|concat|ascii|substring|@@|top\s)|\bexec\s+master\.|['\x22`]\s*union\b|\bselect\b[^a-z]*\bfrom\b"),
        rule!(942220, C::Sqli, 1, Critical, ARGS, Text, "integer overflow or magic number",
            r"^(?:-?(?:2147483648|4294967295|4294967296|9223372036854775807|18446744073709551615)|(?:0x)?[f]{8,}|2\.2250738585072011e-308|1e309|-?2\.2250738585072012e-00308)$"),
        rule!(942230, C::Sqli, 1, Critical, ARGS, Folded, "conditional SQL",
            r"\)\s*(?:like|rlike|regexp|sounds\s+like|between|in|is)\s*\(|\bcase\s+when\b.*\bthen\b|\bif\s*\(.*,.*,.*\)|\)\s*(?:and|or|xor|&&|\|\|)\s*\("),
        rule!(942240, C::Sqli, 1, Critical, ARGS, Folded, "MySQL charset switch or MSSQL time delay",
            r"alter\s+[a-z]+\s+character\s+set|\bwaitfor\s+(?:delay|time)\b|;\s*waitfor\b|['\x22]\s*waitfor\b"),
        rule!(942250, C::Sqli, 1, Critical, ARGS | BODY, Folded, "MERGE / EXECUTE IMMEDIATE / MATCH AGAINST",
            r"\bexecute\s+immediate\b|\bmerge\s+into\b|\bmatch\s*\([^)]*\)\s*against\s*\("),
        rule!(942270, C::Sqli, 1, Critical, ARGS, Folded, "UNION SELECT FROM",
            r"union[\s(]*(?:all|distinct)?[\s(]*select.*from|unionselectfrom"),
        rule!(942280, C::Sqli, 1, Critical, ARGS | UA | REFERER, Folded, "pg_sleep, waitfor, shutdown",
            r"select\s+pg_sleep|waitfor\s*delay\s*['\x22]|;\s*shutdown\s*(?:--|#|;|$)|['\x22]\s*waitfor\s*delay"),
        rule!(942290, C::Sqli, 1, Critical, ARGS | ARG_NAME | BODY, Text, "NoSQL (MongoDB) operator",
            r"\[\s*\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|elemmatch|or|and|nor|not|expr|jsonschema|mod|all|size|type|text)\s*\]|['\x22]\$(?:where|ne|gt|lt|regex|expr|function)['\x22]\s*:"),
        rule!(942291, C::Sqli, 1, Critical, ARG_NAME, Text, "NoSQL operator as a JSON key",
            r"^\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|elemmatch|or|and|nor|not|expr|jsonschema|mod|all|size|type|text|function|accumulator|lookup)$"),
        rule!(942320, C::Sqli, 1, Critical, ARGS, Folded, "stored procedure or function injection",
            r"\b[a-z_)]+::(?:int|integer|int[248]|text|varchar|bigint|numeric|bool|boolean|jsonb?|regclass|oid|bytea)\b|\bprocedure\s+analyse\s*\(|\bexec(?:ute)?\s*\(\s*@|\bdeclare\s+@|\bcreate\s+(?:or\s+replace\s+)?(?:function|procedure|trigger)\b|;\s*declare\b|\bcursor\s+for\b"),
        rule!(942350, C::Sqli, 1, Critical, ARGS, Folded, "SQL data definition or manipulation",
            r"(?:^|[;'\x22)])\s*(?:insert\s+into|delete\s+from|update\s+\S+\s+set|drop\s+(?:table|database|schema|user|view|function|procedure)|alter\s+(?:table|user|database)|truncate\s+table|create\s+(?:table|database|user|function|view)|grant\s+\S+\s+on|rename\s+table)\b|\bcreate\s+function\b.*\breturns\b|;\s*truncate\b|;\s*replace\b.*\bvalues\b|(?:^|[;/])\s*create\s+table\b"),
        rule!(942360, C::Sqli, 1, Critical, ARGS, Folded, "SQL keyword sequence",
            r"\bas\s*['\x22`]?[a-z0-9_]*['\x22`]?\s+from\b|`\s*regexp\s|\bas\s+['\x22`]?[a-z0-9_]+['\x22`]?\s+from\s|\bselect\s+(?:char|ascii|hex|unhex|concat|load_file|user|version|database)\s*\(|\b(?:load_file|into\s+(?:out|dump)file)\b|\b(?:select|union)\b.{0,100}\b(?:from|where|limit|order\s+by|group\s+by)\b.{0,40}(?:--|#|/\*|;|$)"),
        rule!(942500, C::Sqli, 1, Critical, ARGS, Text, "MySQL inline comment",
            r"/\*\s*!\s*[0-9]*\s*[a-z]"),
        rule!(942540, C::Sqli, 1, Critical, ARGS, Text, "quote-terminated authentication bypass",
            r"^[a-z0-9_.@+-]+@[a-z0-9.-]+['\x22`]\s*(?:;|--|#|/\*|$)|^[a-z0-9_.-]+['\x22`]\s*(?:;|--\s|#|/\*)"),
        rule!(942550, C::Sqli, 1, Critical, ARGS | PATH, Folded, "JSON operators in SQL",
            r"['\x22]\s*(?:->>?|\?|[<>]=?)\s*['\x22]\$?[.\[a-z0-9]|json_extract\s*\(|['\x22]\s*::\s*jsonb?\b|\bjsonb?\s*(?:<@|@>|\?[|&]?|#>>?|@@|->>?)|(?:<@|@>|#>>?|@@|\?&|\?\|)\s*['\x22]?(?:\{|\[|array\[|\$)|['\x22]\s*(?:<@|@>)\s*['\x22]"),
        rule!(942560, C::Sqli, 1, Critical, ARGS, Folded, "MySQL scientific-notation bypass",
            r"[0-9]\.e\s*[(,)]|[0-9]\.e\s*[a-z.]"),
        // --- 943 session fixation
        rule!(943100, C::SessionFixation, 1, Critical, ARGS, Text, "cookie set through an argument",
            r"\.cookie\s*(?:;|=|\+)|document\.cookie|<\s*meta[^>]*http-equiv\s*=\s*['\x22]?set-cookie|\bexpires\s*=|set-cookie\s*:"),
        rule!(943120, C::SessionFixation, 1, Critical, ARG_NAME, Text, "session id in an argument",
            r"session(?:[-_]?(?:id|token))?$|sessid|(?:^|[_.:-])sess$|^(?:sid|s_id|cfid|cftoken|cfsid|cakephp|shiny-token|viewstate|symfony|connect\.sid|sails\.sid|express\.sid)$|login_token|^__(?:host|secure)-"),
        // --- 944 Java
        rule!(944100, C::Java, 1, Critical, ARGS_HEADERS, Text, "Java runtime / process builder",
            r"java\.lang\.(?:runtime|processbuilder|processimpl|reflect|system|class|classloader|thread|invoke)|\bruntime\s*\.\s*getruntime\s*\(|\bprocessbuilder\b"),
        rule!(944110, C::Java, 1, Critical, ARGS_HEADERS, Text, "Java process execution",
            r"\b(?:java\.)?(?:runtime|processbuilder)\b|\.exec\s*\(|getruntime"),
        rule!(944120, C::Java, 1, Critical, ARGS_HEADERS, Text, "Java deserialization gadget",
            r"(?:clonetransformer|forclosure|instantiatefactory|instantiatetransformer|invokertransformer|prototypeclonefactory|prototypeserializationfactory|whileclosure|chainedtransformer|constanttransformer|lazymap|transformedmap|templatesimpl|annotationinvocationhandler|badattributevalueexpexception|jdbcrowsetimpl|beancomparator|priorityqueue|hashset|hashmap)"),
        rule!(944130, C::Java, 1, Critical, ARGS_HEADERS | PATH, Text, "Java class name",
            r"\b(?:java\.(?:io|lang|net|nio|util|beans|rmi|security|sql|applet|awt)\.[a-z]|javax\.(?:script|naming|management|xml|el|faces|servlet|swing)\b|com\.sun\.|com\.opensymphony\.|org\.apache\.|org\.omg\.|org\.springframework\.|org\.hibernate\.|org\.codehaus\.groovy|org\.mozilla\.javascript|ognl\.|freemarker\.template|bsh\.interpreter|groovy\.lang|jdk\.(?:jshell|nashorn)|sun\.(?:misc|reflect|rmi))"),
        rule!(944140, C::Java, 1, Critical, FILE, Text, "upload of a Java server page",
            r"\.\s*(?:jspx?|jspf|jsw|jsv|jhtml|war|ear)[.\s]*$"),
        rule!(944150, C::Java, 1, Critical, ARGS_HEADERS | PATH, Text, "Log4Shell (JNDI lookup)",
            r"\$\{[^}]*(?:jndi|j\}?\$?\{?[^}]*n\}?d\}?i|lower:|upper:|::-j|env:|sys:|date:|main:)|\$\{\s*\$\{"),
        // --- 921 protocol attacks
        rule!(921110, C::ProtocolAttack, 1, Critical, ARGS | HEADER | BODY, Text, "request smuggling (request line inside a value)",
            r"(?:get|post|put|delete|head|options|connect|trace|track|patch|propfind|proppatch|mkcol|copy|move|lock|unlock)\s+[^\s]+\s+http/[0-9]"),
        rule!(921120, C::ProtocolAttack, 1, Critical, ARGS | COOKIE, Text, "response splitting",
            r"[\r\n]+\s*(?:content-(?:type|length)|set-cookie|location|http/[0-9]|refresh|x-[a-z-]+)\s*:|[\r\n]\s*http/[0-9]"),
        rule!(921130, C::ProtocolAttack, 1, Critical, ARGS | COOKIE, Text, "response splitting (HTML after CRLF or meta refresh)",
            r"[\r\n]{2,}\s*<|<\s*meta[^>]*http-equiv\s*=\s*['\x22]?refresh|[\r\n]\s*<\s*html"),
        rule!(921140, C::ProtocolAttack, 1, Critical, HEADER | UA | REFERER, Text, "header injection through a header value",
            r"[\r\n]"),
        rule!(921150, C::ProtocolAttack, 1, Critical, ARG_NAME, Text, "CR or LF in an argument name",
            r"[\r\n]"),
        rule!(921160, C::ProtocolAttack, 1, Critical, ARG_NAME | ARG, Text, "header injection through an argument",
            r"[\r\n]+[a-z-]+[\r\n\s]*:"),
        rule!(921190, C::ProtocolAttack, 1, Critical, PATH, Text, "CR or LF in the path",
            r"[\r\n]"),
        rule!(921200, C::ProtocolAttack, 1, Critical, ARGS, Text, "LDAP injection",
            r"\)\s*[(|&!]\s*[(&|!]|\)\s*\(\s*[a-z]+\s*[~<>]?=|\*\)\s*\(|\)\s*\(\s*\||\)\s*[|&]\s*\(|^[^()]*\)\s*\(\s*[&|!]?\s*\)"),
        rule!(921240, C::ProtocolAttack, 1, Critical, ARGS | PATH, Text, "mod_proxy unix socket attack",
            r"unix:[^|]*\|"),
        // --- 920 protocol (values)
        rule!(920500, C::Protocol, 1, Critical, PATH, Text, "backup or editor file",
            r"~(?:$|/)|\.(?:swp|swo|bak|old|orig|save|tmp)$"),
        rule!(920440, C::Protocol, 1, Critical, PATH, Text, "restricted file extension",
            r"\.(?:asa|asax|ascx|axd|backup|bak|bat|cdx|cer|cfg|cmd|com|config|conf|cs|csproj|csr|dat|db|dbf|dll|dos|htr|htw|ida|idc|idq|inc|ini|key|licx|lnk|log|mdb|old|pass|pdb|pol|printer|pwd|rdb|resources|resx|sql|swp|sys|vb|vbs|vbproj|vsdisco|webinfo|xsd|xsx|sqlite|sqlite3|kdbx|pem|p12|pfx|jks|keystore|env|git|svn|htpasswd|htaccess|yml|yaml|toml|lock|bash_history)$"),
        rule!(920101, C::Protocol, 1, Critical, PATH, Text, "port-like colon in a path segment",
            r"[a-z0-9]\.[a-z0-9]+:[0-9]+(?:$|/)"),
        rule!(920610, C::Protocol, 1, Critical, PATH, Text, "raw fragment in the request target",
            r"#"),
        // Notice-level smells that only add up with something else.
        rule!(942000, C::Sqli, 2, Notice, ARGS, Folded, "SQL comment at the end",
            r"(?:--|#)\s*$"),
        rule!(941000, C::Xss, 2, Warning, ARGS, Text, "angle bracket with a tag name",
            r"<[a-z]+[\s/>]"),
        rule!(932000, C::Rce, 2, Error, ARGS, Text, "shell metacharacter run",
            r"[;&|`]\s*[a-z]"),
        rule!(930000, C::Lfi, 2, Error, ARGS, Text, "absolute Unix path",
            r"^/(?:etc|proc|sys|var|usr|root|home|tmp|dev|boot|opt)/"),
    ]
}
