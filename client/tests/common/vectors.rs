//! Parser of client/tests/vectors/*.txt: `[section]` lines open a block,
//! `key = value` lines fill it, `#` starts a comment. Values are hex unless
//! the key is `name` or ends in `_text`.

use std::collections::BTreeMap;

/// One `[section]` block.
#[derive(Debug, Default)]
pub struct Block {
    pub kind: String,
    pub line: usize,
    pub fields: BTreeMap<String, String>,
}

impl Block {
    pub fn hex(&self, key: &str) -> Vec<u8> {
        let v = self
            .fields
            .get(key)
            .unwrap_or_else(|| panic!("block at line {} lacks {key}", self.line));
        unhex(v)
    }
    pub fn hex32(&self, key: &str) -> [u8; 32] {
        self.hex(key)
            .try_into()
            .unwrap_or_else(|_| panic!("{key} at line {} is not 32 bytes", self.line))
    }
    pub fn opt_hex32(&self, key: &str) -> Option<[u8; 32]> {
        match self.fields.get(key).map(String::as_str) {
            None | Some("-") => None,
            Some(_) => Some(self.hex32(key)),
        }
    }
    pub fn text(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("block at line {} lacks {key}", self.line))
    }
    pub fn num(&self, key: &str) -> u64 {
        self.text(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} at line {} is not a number", self.line))
    }
}

pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if s.is_empty() || s == "\"\"" {
        return Vec::new();
    }
    assert!(s.len() % 2 == 0, "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn parse(text: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(kind) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push(Block {
                kind: kind.to_string(),
                line: i + 1,
                ..Default::default()
            });
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: expected key = value", i + 1));
        let b = out
            .last_mut()
            .unwrap_or_else(|| panic!("line {}: value outside a block", i + 1));
        b.fields.insert(k.trim().to_string(), v.trim().to_string());
    }
    out
}

pub fn load(file: &str) -> Vec<Block> {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}
