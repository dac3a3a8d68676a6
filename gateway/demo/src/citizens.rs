//! Fake citizen records whose numbers are *valid*: ID-card numbers with a correct GB 11643 check
//! digit and a real birth date, mobiles in the 1[3-9] ranges, bank cards passing Luhn. Masking
//! (a later feature) must recognise them, so they must look exactly like real ones.

use serde_json::{json, Value};

const SURNAMES: [&str; 12] = [
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "欧阳", "司马",
];
const GIVEN: [&str; 12] = [
    "伟", "芳", "娜", "秀英", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰",
];
const AREAS: [(&str, &str); 5] = [
    ("110101", "北京市东城区"),
    ("310104", "上海市徐汇区"),
    ("440305", "广东省深圳市南山区"),
    ("330106", "浙江省杭州市西湖区"),
    ("510107", "四川省成都市武侯区"),
];
const STREETS: [&str; 5] = ["建国路", "人民路", "解放路", "中山路", "长安街"];

/// A small deterministic generator (xorshift), so every run shows the same demo people.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// GB 11643-1999 check character of the first 17 digits.
pub fn id_check_char(first17: &[u8]) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const MAP: &[u8; 11] = b"10X98765432";
    let sum: u32 = first17
        .iter()
        .zip(W)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    MAP[(sum % 11) as usize] as char
}

/// Luhn check digit for a number's leading digits.
pub fn luhn_digit(digits: &[u8]) -> char {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let v = u32::from(d - b'0');
            if i % 2 == 0 {
                let x = v * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                v
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

fn person(g: &mut Gen, id: u64) -> Value {
    let name = format!(
        "{}{}",
        SURNAMES[g.below(12) as usize],
        GIVEN[g.below(12) as usize]
    );
    let (area, place) = AREAS[g.below(5) as usize];
    let birth = format!(
        "{}{:02}{:02}",
        1950 + g.below(55),
        1 + g.below(12),
        1 + g.below(28)
    );
    let first17 = format!("{area}{birth}{:03}", g.below(1000));
    let id_card = format!("{first17}{}", id_check_char(first17.as_bytes()));
    let mobile = format!("1{}{:09}", 3 + g.below(7), g.below(1_000_000_000));
    let card18 = format!("622202{:012}", g.below(1_000_000_000_000));
    let bank_card = format!("{card18}{}", luhn_digit(card18.as_bytes()));
    let address = format!(
        "{place}{}{}号{}室",
        STREETS[g.below(5) as usize],
        1 + g.below(300),
        101 + g.below(1500)
    );
    json!({"id": id, "name": name, "idCard": id_card, "mobile": mobile, "bankCard": bank_card, "address": address})
}

/// A page of citizens: `count` records starting at `page * count`.
pub fn page(page: u64, count: u64) -> Value {
    let count = count.clamp(1, 5000);
    let data: Vec<Value> = (0..count)
        .map(|i| {
            let id = page * count + i + 1;
            let mut g = Gen(0x9E37_79B9_7F4A_7C15 ^ id.wrapping_mul(0x2545_F491_4F6C_DD1D));
            g.next();
            person(&mut g, id)
        })
        .collect();
    json!({"code": 0, "page": page, "count": count, "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_check_digit_example() {
        // GB 11643 worked example: 11010519491231002X.
        assert_eq!(id_check_char(b"11010519491231002"), 'X');
        assert_eq!(luhn_digit(b"7992739871"), '3');
    }

    #[test]
    fn records_are_valid() {
        let v = page(0, 50);
        for p in v["data"].as_array().unwrap() {
            let id = p["idCard"].as_str().unwrap();
            assert_eq!(id.len(), 18);
            assert_eq!(
                id.chars().last().unwrap(),
                id_check_char(&id.as_bytes()[..17])
            );
            let card = p["bankCard"].as_str().unwrap();
            assert_eq!(card.len(), 19);
            assert_eq!(
                card.chars().last().unwrap(),
                luhn_digit(&card.as_bytes()[..18])
            );
            let m = p["mobile"].as_str().unwrap();
            assert!(
                m.len() == 11 && m.starts_with('1') && (b'3'..=b'9').contains(&m.as_bytes()[1])
            );
        }
    }
}
