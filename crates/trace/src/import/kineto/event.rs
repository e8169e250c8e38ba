//! One element of `traceEvents` as it sits in the file, and its conversion to [`Event`].

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::Text;
use crate::analyze::args::Args;
use crate::model::{Event, Id, Phase};
use crate::time::parse_us_to_ns;

/// Borrowed view of one event: strings borrow from the block when unescaped, numbers stay
/// raw text so timestamps are parsed as decimals. Members outside the Trace Event Format's
/// core set are skipped. Filled by serde_json, or by `direct.rs` for the common shapes.
#[derive(Default, Deserialize)]
pub struct RawEvent<'a> {
    #[serde(borrow)]
    pub ph: Option<Text<'a>>,
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    #[serde(borrow)]
    pub cat: Option<Text<'a>>,
    #[serde(borrow)]
    pub pid: Option<Raw<'a>>,
    #[serde(borrow)]
    pub tid: Option<Raw<'a>>,
    #[serde(borrow)]
    pub ts: Option<Raw<'a>>,
    #[serde(borrow)]
    pub dur: Option<Raw<'a>>,
    #[serde(borrow)]
    pub id: Option<Raw<'a>>,
    #[serde(borrow)]
    pub bp: Option<Text<'a>>,
    #[serde(borrow)]
    pub s: Option<Text<'a>>,
    #[serde(borrow)]
    pub args: Option<Raw<'a>>,
    /// The `args` members the analyses read, when the direct parser found them while
    /// walking `args` (`None`: the consumer scans `args` itself).
    #[serde(skip)]
    pub scanned: Option<Args<'a>>,
}

/// A member's value as its JSON text (a `RawValue`'s).
#[derive(Clone, Copy)]
pub struct Raw<'a>(pub &'a str);

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(|r| Raw(r.get()))
    }
}

impl<'a> RawEvent<'a> {
    /// The event, its strings borrowed from the block where this borrows them (an escaped
    /// string, unescaped into its own buffer, is copied).
    pub fn to_event(&self) -> Result<Event<'a>, String> {
        let ph = match self.ph.as_ref().map(|t| t.0.as_bytes()) {
            Some([c]) => Phase(*c),
            Some(other) => {
                return Err(format!(
                    "event phase `{}` is not one letter",
                    String::from_utf8_lossy(other)
                ));
            }
            None => return Err("event without `ph`".into()),
        };
        let ts = match self.ts {
            Some(Raw(raw)) => {
                Some(parse_us_to_ns(raw).ok_or_else(|| format!("`ts` is not a number: {raw}"))?)
            }
            None => None,
        };
        let dur = match self.dur {
            Some(Raw(raw)) => {
                parse_us_to_ns(raw).ok_or_else(|| format!("`dur` is not a number: {raw}"))?
            }
            None => 0,
        };
        let text = |t: &Option<Text<'a>>| t.as_ref().map(|t| t.0.clone());
        Ok(Event {
            ph,
            name: text(&self.name).unwrap_or(Cow::Borrowed("")),
            cat: text(&self.cat).unwrap_or(Cow::Borrowed("")),
            pid: self.pid.map_or(Id::Int(0), id_of),
            tid: self.tid.map_or(Id::Int(0), id_of),
            ts,
            dur,
            id: self.id.map(id_of),
            bp: text(&self.bp),
            scope: text(&self.s),
            args: self.args.map(|Raw(r)| Cow::Borrowed(r)),
        })
    }
}

/// A pid/tid/flow id: integers stay integers; strings (and anything else) are kept as text.
fn id_of(Raw(text): Raw<'_>) -> Id<'_> {
    if text.starts_with('"') {
        return match serde_json::from_str::<Text>(text) {
            Ok(t) => Id::Str(t.0),
            Err(_) => Id::Str(Cow::Borrowed(text.trim_matches('"'))),
        };
    }
    match text.parse::<i64>() {
        Ok(v) => Id::Int(v),
        Err(_) => Id::Str(Cow::Borrowed(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Event<'_> {
        serde_json::from_str::<RawEvent>(json)
            .unwrap()
            .to_event()
            .unwrap()
    }

    #[test]
    fn keeps_kineto_fields_exactly() {
        let ev = parse(
            r#"{"ph": "X", "cat": "kernel", "name": "k", "pid": 9, "tid": 3,
                "ts": 4909914679584.875, "dur": 6.649, "args": {"correlation": 92158}}"#,
        );
        assert_eq!(ev.ph, Phase::COMPLETE);
        assert_eq!(ev.ts, Some(4_909_914_679_584_875));
        assert_eq!(ev.dur, 6_649);
        assert_eq!(ev.pid, Id::Int(9));
        assert!(matches!(ev.name, Cow::Borrowed("k")));
        assert_eq!(ev.args.as_deref(), Some(r#"{"correlation": 92158}"#));
    }

    #[test]
    fn string_ids_and_escapes() {
        let ev = parse(
            r#"{"ph": "X", "name": "a\"b", "pid": "Spans", "tid": "PyTorch Profiler", "ts": "12", "id": 7}"#,
        );
        assert_eq!(ev.name, "a\"b");
        assert_eq!(ev.pid, Id::Str(Cow::Borrowed("Spans")));
        assert_eq!(ev.ts, Some(12_000));
        assert_eq!(ev.id, Some(Id::Int(7)));
    }

    #[test]
    fn rejects_unusable_times() {
        let raw: RawEvent = serde_json::from_str(r#"{"ph": "X", "ts": "soon"}"#).unwrap();
        assert!(raw.to_event().unwrap_err().contains("`ts` is not a number"));
    }
}
