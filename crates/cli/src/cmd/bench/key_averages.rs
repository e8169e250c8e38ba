//! torch's `key_averages(...).table(sort_by=..., row_limit=100)` layout for loupe's rows:
//! dashed rules, torch's column names and time format, the "Self CPU time total" footer. The
//! "CUDA" columns hold the rank's compute lane (loupe computes on the CPU), named as torch
//! names them so that scripts reading these tables keep working.

use loupe_offline::key_averages::KeyAverages;

/// torch's default `row_limit`.
const ROW_LIMIT: usize = 100;

/// torch's `_format_time`: seconds, milliseconds or microseconds with three decimals.
fn time(ns: i64) -> String {
    let us = ns as f64 / 1e3;
    if us >= 1e6 {
        format!("{:.3}s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.3}ms", us / 1e3)
    } else {
        format!("{us:.3}us")
    }
}

fn percent(part: i64, whole: i64) -> String {
    if whole == 0 {
        "0.00%".into()
    } else {
        format!("{:.2}%", part as f64 * 100.0 / whole as f64)
    }
}

pub fn render(t: &KeyAverages) -> String {
    let self_cpu_total = t.self_cpu_total_ns();
    let self_dev_total = t.self_device_total_ns();
    let mut header = vec![
        "Name",
        "Self CPU %",
        "Self CPU",
        "CPU total %",
        "CPU total",
        "CPU time avg",
    ];
    if t.has_device {
        header.extend(["Self CUDA", "Self CUDA %", "CUDA total", "CUDA time avg"]);
    }
    header.extend(["# of Calls", "Input Shapes"]);
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .take(ROW_LIMIT)
        .map(|r| {
            let calls = r.calls.max(1) as i64;
            let mut row = vec![
                r.name.clone(),
                percent(r.self_cpu_ns, self_cpu_total),
                time(r.self_cpu_ns),
                percent(r.cpu_total_ns, self_cpu_total),
                time(r.cpu_total_ns),
                time(r.cpu_total_ns / calls),
            ];
            if t.has_device {
                row.extend([
                    time(r.self_device_ns),
                    percent(r.self_device_ns, self_dev_total),
                    time(r.device_total_ns),
                    time(r.device_total_ns / calls),
                ]);
            }
            row.extend([r.calls.to_string(), r.input_shapes.clone()]);
            row
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule: String = widths
        .iter()
        .map(|w| "-".repeat(*w))
        .collect::<Vec<_>>()
        .join("  ");
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (s, w))| {
                if c == 0 {
                    format!("{s:<w$}")
                } else {
                    format!("{s:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    out.push_str(&rule);
    out.push('\n');
    out.push_str(&line(
        &header.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    ));
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out.push_str(&rule);
    out.push('\n');
    out.push_str(&format!("Self CPU time total: {}\n", time(self_cpu_total)));
    if t.has_device {
        out.push_str(&format!("Self CUDA time total: {}\n", time(self_dev_total)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_as_torch_formats_them() {
        assert_eq!(time(1_500), "1.500us");
        assert_eq!(time(2_345_000), "2.345ms");
        assert_eq!(time(3_000_000_000), "3.000s");
        assert_eq!(percent(1, 3), "33.33%");
    }
}
