//! Which rank (and stage) a trace file belongs to: SGLang's file names
//! (`<id>-TP-1-DP-0-PP-0-EP-1-DECODE.trace.json.gz`), generic `rank3` / `rank[3]` names,
//! Kineto's `distributedInfo.rank`, or a user's `--rank-regex`.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use crate::error::{Result, TraceError};

/// The prefill/decode stage a trace (or a step) covers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Prefill,
    Decode,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prefill => "prefill",
            Stage::Decode => "decode",
        }
    }

    /// SGLang's forward-mode names: EXTEND/PREFILL/MIXED are prefill work, DECODE (and
    /// speculative VERIFY/DRAFT steps, which run per decode iteration) decode work.
    pub fn from_mode(mode: &str) -> Option<Stage> {
        match mode.to_ascii_uppercase().as_str() {
            "EXTEND" | "PREFILL" | "MIXED" | "SPLIT_PREFILL" => Some(Stage::Prefill),
            "DECODE" | "VERIFY" | "TARGET_VERIFY" | "DRAFT" | "DRAFT_EXTEND" => Some(Stage::Decode),
            _ => None,
        }
    }
}

/// A rank's identity. Parallel dimensions come from SGLang file names; `global` from
/// `distributedInfo`, a generic file name or `--rank-regex`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RankId {
    pub tp: Option<u32>,
    pub dp: Option<u32>,
    pub pp: Option<u32>,
    pub ep: Option<u32>,
    pub global: Option<u32>,
    pub stage: Option<Stage>,
}

static SGLANG_DIMS: LazyLock<[(char, Regex); 4]> = LazyLock::new(|| {
    ["TP", "DP", "PP", "EP"].map(|d| {
        (
            d.as_bytes()[0] as char,
            Regex::new(&format!(r"(?:^|[-_.]){d}-(\d+)")).expect("static regex"),
        )
    })
});
static STAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-(EXTEND|DECODE|prefill|decode)(?:[-_.]|$)").expect("static regex")
});
static GENERIC_RANK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)rank(?:[-_]?(\d+)|\[(\d+)\])").expect("static regex"));

impl RankId {
    /// What the file name says. `rank_regex` (a named group `rank`, else the first group) wins
    /// over the built-in patterns for the global rank.
    pub fn from_file_name(path: &Path, rank_regex: Option<&Regex>) -> RankId {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut id = RankId::default();
        for (dim, re) in SGLANG_DIMS.iter() {
            let v = re
                .captures(&name)
                .and_then(|c| c.get(1)?.as_str().parse().ok());
            match dim {
                'T' => id.tp = v,
                'D' => id.dp = v,
                'P' => id.pp = v,
                _ => id.ep = v,
            }
        }
        id.stage = STAGE
            .captures(&name)
            .and_then(|c| Stage::from_mode(c.get(1)?.as_str()));
        id.global = match rank_regex {
            Some(re) => re.captures(&name).and_then(|c| {
                c.name("rank")
                    .or_else(|| c.get(1))
                    .and_then(|m| m.as_str().parse().ok())
            }),
            None => GENERIC_RANK.captures(&name).and_then(|c| {
                c.get(1)
                    .or_else(|| c.get(2))
                    .and_then(|m| m.as_str().parse().ok())
            }),
        };
        id
    }

    pub fn has_parallel_dims(&self) -> bool {
        self.tp.is_some() || self.dp.is_some() || self.pp.is_some() || self.ep.is_some()
    }

    /// SGLang's merged-trace label (`[TP01-DP00-EP03]`), else `[RANK03]`, else the file's
    /// position among the inputs (`[FILE2]`).
    pub fn label(&self, file_index: usize) -> String {
        if self.has_parallel_dims() {
            let parts: Vec<String> = [
                ("TP", self.tp),
                ("DP", self.dp),
                ("PP", self.pp),
                ("EP", self.ep),
            ]
            .iter()
            .filter_map(|(d, v)| v.map(|v| format!("{d}{v:02}")))
            .collect();
            format!("[{}]", parts.join("-"))
        } else if let Some(g) = self.global {
            format!("[RANK{g:02}]")
        } else {
            format!("[FILE{file_index}]")
        }
    }

    /// SGLang's merge order: data-parallel group, then expert, pipeline and tensor rank (a
    /// missing dimension counts as 0, as in SGLang); then the global rank, files without one
    /// last.
    pub fn order(&self, other: &RankId) -> Ordering {
        let key = |r: &RankId| {
            let d = |v: Option<u32>| v.unwrap_or(0);
            (
                d(r.dp),
                d(r.ep),
                d(r.pp),
                d(r.tp),
                r.global.unwrap_or(u32::MAX),
            )
        };
        key(self).cmp(&key(other))
    }

    /// The number `--ranks 0-3` selects on: the global rank when known, else the TP rank.
    pub fn number(&self) -> Option<u32> {
        self.global.or(self.tp)
    }
}

/// A `--ranks` selection: numbers and ranges (`0,2-3`, matched against [`RankId::number`])
/// or label parts (`TP1`, `DP0-TP02`, all of which must match).
#[derive(Clone, Debug)]
pub struct RankFilter {
    items: Vec<RankItem>,
}

#[derive(Clone, Debug)]
enum RankItem {
    Range(u32, u32),
    Parts(Vec<(char, u32)>),
}

impl RankFilter {
    pub fn parse(text: &str) -> Result<RankFilter> {
        let bad = |item: &str| {
            TraceError::Usage(format!(
                "--ranks: `{item}` is neither a number, a range like 0-3, nor label parts like TP1-DP0"
            ))
        };
        let mut items = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.as_bytes()[0].is_ascii_digit() {
                let (a, b) = item.split_once('-').unwrap_or((item, item));
                let a: u32 = a.trim().parse().map_err(|_| bad(item))?;
                let b: u32 = b.trim().parse().map_err(|_| bad(item))?;
                items.push(RankItem::Range(a.min(b), a.max(b)));
            } else {
                let mut parts = Vec::new();
                for p in item.trim_matches(['[', ']']).split('-') {
                    let p = p.trim().to_ascii_uppercase();
                    let dim = match p.get(..2) {
                        Some("TP") => 'T',
                        Some("DP") => 'D',
                        Some("PP") => 'P',
                        Some("EP") => 'E',
                        _ => return Err(bad(item)),
                    };
                    parts.push((dim, p[2..].parse().map_err(|_| bad(item))?));
                }
                items.push(RankItem::Parts(parts));
            }
        }
        if items.is_empty() {
            return Err(bad(text));
        }
        Ok(RankFilter { items })
    }

    pub fn matches(&self, id: &RankId) -> bool {
        self.items.iter().any(|item| match item {
            RankItem::Range(a, b) => id.number().is_some_and(|n| (*a..=*b).contains(&n)),
            RankItem::Parts(parts) => parts.iter().all(|(dim, v)| {
                let have = match dim {
                    'T' => id.tp,
                    'D' => id.dp,
                    'P' => id.pp,
                    _ => id.ep,
                };
                have == Some(*v)
            }),
        })
    }

    /// Matches a pid of a merged trace (`"[TP01-DP00] 4037"`) by its label.
    pub fn matches_label(&self, pid: &str) -> bool {
        match parse_label(pid) {
            Some(id) => self.matches(&id),
            None => false,
        }
    }
}

/// The rank identity inside a merged pid's leading `[...]` label.
pub fn parse_label(pid: &str) -> Option<RankId> {
    let inner = pid.strip_prefix('[')?.split(']').next()?;
    let mut id = RankId::default();
    for part in inner.split('-') {
        let (dim, num) = part.split_at(part.find(|c: char| c.is_ascii_digit())?);
        let v: u32 = num.parse().ok()?;
        match dim {
            "TP" => id.tp = Some(v),
            "DP" => id.dp = Some(v),
            "PP" => id.pp = Some(v),
            "EP" => id.ep = Some(v),
            "RANK" => id.global = Some(v),
            _ => return None,
        }
    }
    Some(id)
}

/// Compiles `--rank-regex`, checking it has something to capture.
pub fn compile_rank_regex(text: &str) -> Result<Regex> {
    let re = Regex::new(text).map_err(|e| TraceError::Usage(format!("--rank-regex: {e}")))?;
    if re.captures_len() < 2 {
        return Err(TraceError::Usage(
            "--rank-regex needs a capture group (a named group `rank`, or the first group) for the rank number"
                .into(),
        ));
    }
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sglang_file_names() {
        let id = RankId::from_file_name(
            Path::new("run/my_exp-1769070226.0713482-TP-1-DP-0-EP-1-DECODE.trace.json.gz"),
            None,
        );
        assert_eq!(
            (id.tp, id.dp, id.pp, id.ep, id.stage),
            (Some(1), Some(0), None, Some(1), Some(Stage::Decode))
        );
        assert_eq!(id.label(0), "[TP01-DP00-EP01]");
        let rpd = RankId::from_file_name(Path::new("rpd-1769.1-TP-3.trace.json.gz"), None);
        assert_eq!(rpd.label(0), "[TP03]");
        let v2 = RankId::from_file_name(Path::new("17-TP-0-prefill.trace.json.gz"), None);
        assert_eq!(v2.stage, Some(Stage::Prefill));
    }

    #[test]
    fn reads_generic_and_custom_names() {
        let id = RankId::from_file_name(Path::new("sampled_rank-1.json.gz"), None);
        assert_eq!((id.global, id.label(5)), (Some(1), "[RANK01]".to_string()));
        assert_eq!(
            RankId::from_file_name(Path::new("trace_rank[12].json"), None).global,
            Some(12)
        );
        let re = compile_rank_regex(r"worker(?P<rank>\d+)").unwrap();
        let id = RankId::from_file_name(Path::new("host-worker7.json"), Some(&re));
        assert_eq!(id.global, Some(7));
        assert_eq!(
            RankId::from_file_name(Path::new("trace.json"), None).label(2),
            "[FILE2]"
        );
        assert!(compile_rank_regex(r"worker\d+").is_err());
    }

    #[test]
    fn filters_ranks() {
        let f = RankFilter::parse("0,2-3,TP5-DP1").unwrap();
        let mk = |tp, dp| RankId {
            tp: Some(tp),
            dp: Some(dp),
            ..RankId::default()
        };
        assert!(f.matches(&mk(0, 0)));
        assert!(!f.matches(&mk(1, 0)));
        assert!(f.matches(&mk(3, 1)));
        assert!(f.matches(&mk(5, 1)));
        assert!(!f.matches(&mk(5, 0)));
        assert!(f.matches_label("[TP02-DP00] 4037"));
        assert!(!f.matches_label("Spans"));
        assert!(RankFilter::parse("x").is_err());
    }
}
