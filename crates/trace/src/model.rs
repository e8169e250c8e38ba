//! The one event model every importer produces and every analysis and writer consumes.
//!
//! Events borrow from the reader's buffer (`Cow`), so a reader can hand out millions of them
//! without allocating; a consumer that needs to keep one copies what it needs.

use std::borrow::Cow;
use std::fmt;

/// The Trace Event Format phase letter (`X`, `B`, `E`, `i`, `C`, `M`, `s`, `t`, `f`, ...).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Phase(pub u8);

impl Phase {
    pub const COMPLETE: Phase = Phase(b'X');
    pub const BEGIN: Phase = Phase(b'B');
    pub const END: Phase = Phase(b'E');
    pub const INSTANT: Phase = Phase(b'i');
    pub const INSTANT_LEGACY: Phase = Phase(b'I');
    pub const COUNTER: Phase = Phase(b'C');
    pub const METADATA: Phase = Phase(b'M');
    pub const FLOW_START: Phase = Phase(b's');
    pub const FLOW_STEP: Phase = Phase(b't');
    pub const FLOW_END: Phase = Phase(b'f');

    pub fn is_flow(self) -> bool {
        matches!(self.0, b's' | b't' | b'f')
    }

    pub fn is_instant(self) -> bool {
        matches!(self.0, b'i' | b'I')
    }
}

/// A process or thread identifier: Kineto writes numbers for OS pids/tids and device ids, and
/// strings for pseudo-processes (`"Spans"`, `"Traces"`) and after SGLang's merge (`"[TP01] 0"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Id<'a> {
    Int(i64),
    Str(Cow<'a, str>),
}

impl Id<'_> {
    pub fn into_owned(self) -> Id<'static> {
        match self {
            Id::Int(v) => Id::Int(v),
            Id::Str(s) => Id::Str(Cow::Owned(s.into_owned())),
        }
    }

    pub fn to_owned_id(&self) -> Id<'static> {
        self.clone().into_owned()
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Id::Int(v) => Some(*v),
            Id::Str(s) => s.trim().parse().ok(),
        }
    }
}

impl Default for Id<'_> {
    fn default() -> Self {
        Id::Int(0)
    }
}

impl fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Int(v) => write!(f, "{v}"),
            Id::Str(s) => f.write_str(s),
        }
    }
}

/// One trace event. Times are integer nanoseconds on the trace's own clock: add
/// [`TraceInfo::base_ns`] for Unix time (Kineto's relative timestamps; zero for old absolute
/// ones, for RPD's boot clock and where no base is known).
#[derive(Clone, Debug, Default)]
pub struct Event<'a> {
    pub ph: Phase,
    pub name: Cow<'a, str>,
    pub cat: Cow<'a, str>,
    pub pid: Id<'a>,
    pub tid: Id<'a>,
    /// `None` for events without a timestamp (metadata events usually).
    pub ts: Option<i64>,
    /// Duration of a complete (`X`) event; zero otherwise.
    pub dur: i64,
    /// Flow / async id.
    pub id: Option<Id<'a>>,
    /// Flow binding point (`"e"` binds a flow end to the enclosing slice).
    pub bp: Option<Cow<'a, str>>,
    /// Instant scope (`"t"`, `"p"`, `"g"`).
    pub scope: Option<Cow<'a, str>>,
    /// The `args` object as raw JSON text, passed through untouched by writers.
    pub args: Option<Cow<'a, str>>,
}

impl Default for Phase {
    fn default() -> Self {
        Phase::COMPLETE
    }
}

impl Event<'_> {
    /// A copy that no longer borrows from the reader.
    pub fn to_owned_event(&self) -> Event<'static> {
        let own = |c: &Cow<'_, str>| Cow::Owned(c.to_string());
        Event {
            ph: self.ph,
            name: own(&self.name),
            cat: own(&self.cat),
            pid: self.pid.to_owned_id(),
            tid: self.tid.to_owned_id(),
            ts: self.ts,
            dur: self.dur,
            id: self.id.as_ref().map(Id::to_owned_id),
            bp: self.bp.as_ref().map(own),
            scope: self.scope.as_ref().map(own),
            args: self.args.as_ref().map(own),
        }
    }

    pub fn ts_or_zero(&self) -> i64 {
        self.ts.unwrap_or(0)
    }

    pub fn end(&self) -> i64 {
        self.ts_or_zero() + self.dur.max(0)
    }

    /// Looks up one top-level member of `args` without parsing the rest.
    pub fn arg(&self, key: &str) -> Option<serde_json::Value> {
        let args = self.args.as_deref()?;
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(args).ok()?;
        map.get(key).cloned()
    }
}

/// What an importer learns about a trace besides its events.
#[derive(Clone, Debug, Default)]
pub struct TraceInfo {
    pub format: Format,
    /// Nanoseconds to add to every event time for Unix time, when the trace says.
    pub base_ns: Option<i64>,
    /// `distributedInfo` (Kineto) as raw JSON, plus the fields loupe uses.
    pub distributed: Option<DistributedInfo>,
    /// `deviceProperties` as raw JSON (an array).
    pub device_properties: Option<String>,
    /// Other top-level members (raw JSON), in file order; values over 1 MiB are not kept.
    pub other: Vec<(String, String)>,
    /// Number of events delivered.
    pub events: u64,
    /// Set in lenient mode when the event array ended early (a crashed writer) and the events
    /// read so far were kept.
    pub truncated: bool,
}

#[derive(Clone, Debug, Default)]
pub struct DistributedInfo {
    pub rank: Option<u32>,
    pub world_size: Option<u32>,
    pub raw: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    ChromeJson,
    Rpd,
    /// rocprofv3's rocpd database (rocprofiler-sdk).
    Rocpd,
    Nsys,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::ChromeJson => "chrome-json",
            Format::Rpd => "rpd",
            Format::Rocpd => "rocpd",
            Format::Nsys => "nsys-sqlite",
        }
    }
}

/// Where events go. Readers call it once per event, in file order.
pub trait EventSink {
    fn event(&mut self, ev: &Event<'_>) -> crate::Result<()>;

    /// An event whose `args` members the reader already found while parsing it (`args`
    /// equals `Args::scan(ev.args)`); sinks that read them skip their own scan.
    fn event_scanned(
        &mut self,
        ev: &Event<'_>,
        args: &crate::analyze::args::Args<'_>,
    ) -> crate::Result<()> {
        let _ = args;
        self.event(ev)
    }
}

impl<F: FnMut(&Event<'_>) -> crate::Result<()>> EventSink for F {
    fn event(&mut self, ev: &Event<'_>) -> crate::Result<()> {
        self(ev)
    }
}

/// GPU activity classes with TraceLens's GPU-timeline definitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GpuClass {
    Compute = 0,
    Comm = 1,
    Memcpy = 2,
}

/// Categories that put an event on a GPU timeline (Kineto names; the RPD and Nsight importers
/// use the same ones).
pub fn gpu_class(cat: &str, name: &str) -> Option<GpuClass> {
    match cat {
        "gpu_memcpy" => Some(GpuClass::Memcpy),
        "kernel" | "gpu_memset" => Some(kernel_class(name)),
        _ => None,
    }
}

/// The class of a kernel or memset, which depends on its name only.
pub fn kernel_class(name: &str) -> GpuClass {
    if is_rocclr_copy(name) {
        GpuClass::Memcpy
    } else if is_comm_kernel(name) {
        GpuClass::Comm
    } else {
        GpuClass::Compute
    }
}

/// Communication kernels: NCCL/RCCL of every era (`ncclKernel_*`, `ncclDevKernel_*`,
/// `rcclGenericKernel`), HCCL, and the custom all-reduce kernels of SGLang and vLLM
/// (`cross_device_reduce_*`). Case-insensitive, like TraceLens.
pub fn is_comm_kernel(name: &str) -> bool {
    contains_ignore_ascii_case(name, "nccl")
        || contains_ignore_ascii_case(name, "rccl")
        || contains_ignore_ascii_case(name, "hccl")
        || name.contains("cross_device_reduce")
}

/// ROCm 7.1's blit kernels (`__amd_rocclr_copyBuffer`, ...) carry memcpy work, so TraceLens
/// counts them as memcpy rather than compute.
fn is_rocclr_copy(name: &str) -> bool {
    name.starts_with("__amd_rocclr_copy")
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let n = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(n.len())
        .any(|w| w.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_gpu_work_like_tracelens() {
        let comm = [
            "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)",
            "ncclKernel_AllGather_RING_LL_Sum_int8_t(ncclWorkElem)",
            "void rcclGenericKernel<1, false>(ncclDevComm*, unsigned long, ncclWork*)",
            "void cross_device_reduce_1stage<__hip_bfloat16, 8>(RankData*, RankSignals, Signal*, __hip_bfloat16*, int, int)",
        ];
        for name in comm {
            assert_eq!(gpu_class("kernel", name), Some(GpuClass::Comm), "{name}");
        }
        assert_eq!(
            gpu_class(
                "kernel",
                "Cijk_Alik_Bljk_BBS_BH_Bias_HA_S_SAV_UserArgs_MT64x32x256"
            ),
            Some(GpuClass::Compute)
        );
        assert_eq!(
            gpu_class("gpu_memcpy", "Memcpy DtoD (Device -> Device)"),
            Some(GpuClass::Memcpy)
        );
        assert_eq!(
            gpu_class("gpu_memset", "Memset (Device)"),
            Some(GpuClass::Compute)
        );
        assert_eq!(
            gpu_class("kernel", "__amd_rocclr_copyBuffer"),
            Some(GpuClass::Memcpy)
        );
        assert_eq!(gpu_class("cpu_op", "aten::mm"), None);
        assert_eq!(gpu_class("cuda_runtime", "ncclKernel"), None);
    }
}
