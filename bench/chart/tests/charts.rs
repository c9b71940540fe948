//! The charts drawn from the committed results files (bench/results/*.json)
//! into a temporary directory: each SVG is well formed, names its series,
//! has a bar or a point per data row with the file's figures written on
//! it; and a malformed file gives an error naming the fault, not a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use weavers_chart::draw::{BAR_OPACITY, POINT_RADIUS};
use weavers_chart::{render, render_file, ChartError, Kind};

/// A directory removed when the test ends, whatever happens.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("weavers-chart-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn results(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../results").join(name)
}

fn load(name: &str) -> (String, Value) {
    let text = std::fs::read_to_string(results(name)).unwrap();
    let v = serde_json::from_str(&text).unwrap();
    (text, v)
}

/// Renders the committed `name` into a temporary directory with the binary's
/// own path (render_file) and returns the SVG text.
fn draw(kind: Kind, name: &str, note: Option<&str>) -> String {
    let dir = TempDir::new(name);
    let out = dir.0.join("chart.svg");
    render_file(kind, &results(name), &out, note).unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    check_xml(&svg);
    svg
}

/// Starts with <svg, ends with </svg>, and every tag that opens closes in
/// order (a stack over the tags; attributes hold no '<' or '>', which the
/// backend escapes).
fn check_xml(svg: &str) {
    assert!(svg.starts_with("<svg"), "does not start with <svg: {}", &svg[..svg.len().min(60)]);
    assert!(svg.trim_end().ends_with("</svg>"), "does not end with </svg>");
    let mut stack = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let j = rest[i..].find('>').expect("a tag that never closes") + i;
        let tag = &rest[i + 1..j];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.to_string()), "</{name}> closes the wrong tag");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or("").to_string());
        }
        rest = &rest[j + 1..];
    }
    assert!(stack.is_empty(), "tags left open: {stack:?}");
}

/// The text elements' contents.
fn texts(svg: &str) -> Vec<&str> {
    svg.split("<text").skip(1).filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim())).collect()
}

fn count(svg: &str, needle: &str) -> usize {
    svg.matches(needle).count()
}

#[test]
fn dataplane_chart_has_a_bar_per_system_and_figure() {
    let (_, v) = load("latest.json");
    let svg = draw(Kind::Dataplane, "latest.json", None);
    let t = texts(&svg);
    let figures = [("tcp_gbps", 1.0, 2), ("udp_pps_1pct", 1e-3, 1), ("mcast_pps_01pct", 1e-3, 1)];
    let mut bars = 0;
    for (_, sys) in v["systems"].as_object().unwrap() {
        let title = sys["title"].as_str().unwrap();
        assert!(t.contains(&title), "the legend lacks {title}");
        for (key, scale, digits) in figures {
            if let Some(m) = sys["figures"][key]["median"].as_f64() {
                let label = format!("{:.digits$}", m * scale);
                assert!(t.contains(&label.as_str()), "no bar labelled {label} for {title} {key}");
                bars += 1;
            }
        }
        for key in ["lat_p50", "lat_p99", "lat_p999"] {
            let m = sys["figures"][key]["median"].as_f64().unwrap();
            assert!(t.contains(&format!("{m:.0}").as_str()), "no latency bar labelled {m:.0} for {title}");
            bars += 1;
        }
    }
    assert_eq!(count(&svg, &format!("opacity=\"{BAR_OPACITY}\"")), bars, "one bar per system and figure");
    assert!(bars >= 12, "the committed file has at least 3 systems x 4 figures");
    for l in ["p50", "p99", "p99.9", "Gbit/s", "kpps"] {
        assert!(t.contains(&l), "no label {l}");
    }
    let date = v["machine"]["date"].as_str().unwrap();
    let commit = v["machine"]["commit"].as_str().unwrap();
    assert!(t.iter().any(|l| l.contains(date) && l.contains(commit)), "the caption lacks {date} and {commit}");
}

#[test]
fn scale_chart_has_two_points_per_size() {
    let (_, v) = load("scale.json");
    let svg = draw(Kind::Scale, "scale.json", None);
    let t = texts(&svg);
    let sizes = v["sizes"].as_array().unwrap();
    let unconverged = sizes.iter().filter(|s| s["converge_s"].is_null()).count();
    assert_eq!(count(&svg, "<circle"), 2 * sizes.len(), "a convergence and an idle point per size");
    assert_eq!(count(&svg, &format!("r=\"{POINT_RADIUS}\"")), 2 * sizes.len());
    assert_eq!(count(&svg, "<circle") - count(&svg, "fill=\"none\" stroke"), 2 * (sizes.len() - unconverged));
    for s in sizes {
        if let Some(c) = s["converge_s"].as_f64() {
            assert!(t.contains(&format!("{c:.1} s").as_str()), "no point labelled {c:.1} s");
        }
    }
    // A size without a full mesh is labelled with the wait instead.
    let waits = t.iter().filter(|l| l.starts_with("no full mesh in ") && l.ends_with(" s")).count();
    assert_eq!(waits, unconverged, "{t:?}");
    assert!(t.iter().any(|l| l.contains(v["machine"]["date"].as_str().unwrap())));
}

#[test]
fn aex_chart_has_three_points_per_rate() {
    let (_, v) = load("aex.json");
    let note = "measured 2026-11-26, commit cf3091a";
    let svg = draw(Kind::Aex, "aex.json", Some(note));
    let t = texts(&svg);
    let runs = v.as_array().unwrap();
    assert_eq!(count(&svg, "<circle"), 3 * runs.len(), "p50, p99 and p99.9 per rate");
    let hollow = runs
        .iter()
        .filter(|r| {
            let (sent, acked) = (r["orders_sent"].as_f64().unwrap(), r["orders_acked"].as_f64().unwrap());
            !(r["audit_ok"] == true && acked >= 0.99 * sent)
        })
        .count();
    // Hollow markers for exactly the runs not kept up with (none when every
    // committed run was).
    assert_eq!(count(&svg, "fill=\"none\" stroke"), 3 * hollow);
    for l in ["p50", "p99", "p99.9"] {
        assert!(t.contains(&l), "no legend entry {l}");
    }
    let p50 = runs[0]["ack_latency_us"]["p50"].as_f64().unwrap() / 1000.0;
    assert!(t.contains(&format!("{p50:.1} ms").as_str()));
    assert!(t.iter().any(|l| l.contains(note)), "the note is not in the caption");
}

fn err(kind: Kind, json: &str) -> ChartError {
    match render(kind, "bad.json", json, None) {
        Ok(_) => panic!("{kind:?} drew a chart from {json}"),
        Err(e) => e,
    }
}

#[test]
fn malformed_files_give_errors() {
    assert!(matches!(err(Kind::Dataplane, "{\"systems\": {"), ChartError::Json { .. }));
    assert!(matches!(err(Kind::Scale, "[1, 2"), ChartError::Json { .. }));
    assert!(matches!(err(Kind::Aex, ""), ChartError::Json { .. }));
    assert!(matches!(err(Kind::Dataplane, "[]"), ChartError::Type { .. }));
    assert!(matches!(err(Kind::Dataplane, "{\"systems\": {}}"), ChartError::Invalid { .. }));

    // A committed file with one field taken out, or changed.
    let (_, latest) = load("latest.json");
    let mut v = latest.clone();
    v["systems"]["weavers"]["figures"]["tcp_gbps"].as_object_mut().unwrap().remove("median");
    let e = err(Kind::Dataplane, &v.to_string());
    assert!(e.to_string().contains("`systems.weavers.figures.tcp_gbps.median` is missing"), "{e}");
    let mut v = latest.clone();
    v["systems"]["weavers"]["figures"]["lat_p99"]["median"] = "fast".into();
    assert!(matches!(err(Kind::Dataplane, &v.to_string()), ChartError::Type { .. }));
    let mut v = latest.clone();
    v["systems"]["underlay"]["figures"]["lat_p50"]["min"] = 0.into();
    assert!(matches!(err(Kind::Dataplane, &v.to_string()), ChartError::Invalid { .. }), "zero on a log axis");
    let mut v = latest;
    v["machine"].as_object_mut().unwrap().remove("date");
    assert!(err(Kind::Dataplane, &v.to_string()).to_string().contains("`machine.date` is missing"));

    let (_, scale) = load("scale.json");
    let mut v = scale.clone();
    v["sizes"][1].as_object_mut().unwrap().remove("converge_s");
    assert!(err(Kind::Scale, &v.to_string()).to_string().contains("`sizes.1.converge_s` is missing"));
    let mut v = scale;
    v["sizes"][0]["n"] = (-3).into();
    assert!(matches!(err(Kind::Scale, &v.to_string()), ChartError::Invalid { .. }));
    assert!(matches!(err(Kind::Scale, "{\"machine\": {}, \"sizes\": []}"), ChartError::Invalid { .. }));

    let (_, aex) = load("aex.json");
    let mut v = aex.clone();
    v[2].as_object_mut().unwrap().remove("ack_latency_us");
    assert!(err(Kind::Aex, &v.to_string()).to_string().contains("`2.ack_latency_us` is missing"));
    let mut v = aex;
    v[0]["audit_ok"] = Value::Null;
    assert!(matches!(err(Kind::Aex, &v.to_string()), ChartError::Missing { .. }));
    assert!(matches!(err(Kind::Aex, "{\"runs\": []}"), ChartError::Missing { .. }), "runs without a machine");
}

#[test]
fn a_failed_render_leaves_the_old_chart_and_the_binary_exits_with_the_error() {
    let dir = TempDir::new("bad");
    let bad = dir.0.join("bad.json");
    let out = dir.0.join("out.svg");
    std::fs::write(&bad, "{\"machine\": {\"date\": \"today\"}, \"sizes\": [{\"n\": 16}]}").unwrap();
    std::fs::write(&out, "old chart").unwrap();
    assert!(render_file(Kind::Scale, &bad, &out, None).is_err());
    assert!(matches!(render_file(Kind::Scale, &dir.0.join("absent.json"), &out, None), Err(ChartError::Io { .. })));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old chart");

    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_chart")).args(args).output().unwrap();
    let o = run(&["scale", bad.to_str().unwrap(), out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`sizes.0.converge_s` is missing") && !stderr.contains("panicked"), "{stderr}");
    assert_eq!(run(&["pie", "a.json", "b.svg"]).status.code(), Some(1));
    assert_eq!(run(&["scale", "a.json"]).status.code(), Some(1));

    let good = dir.0.join("good.svg");
    let o = run(&["aex", results("aex.json").to_str().unwrap(), good.to_str().unwrap(), "--note", "a note"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_to_string(&good).unwrap().contains("a note"));
}

/// The SVG without its caption lines (grey text): what a note can change.
fn without_caption(svg: &str) -> String {
    let mut out = String::new();
    let mut rest = svg;
    while let Some(i) = rest.find("<text") {
        let end = rest[i..].find("</text>").expect("an unclosed <text>") + i + "</text>\n".len();
        out.push_str(&rest[..i]);
        if !rest[i..end].contains("fill=\"#5A5A5A\"") {
            out.push_str(&rest[i..end]);
        }
        rest = &rest[end.min(rest.len())..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_committed_charts_are_drawn_from_the_committed_files() {
    let redraw = "redraw with: cargo run -p weavers-chart -- KIND bench/results/FILE.json bench/results/CHART.svg";
    for (kind, json, chart) in
        [(Kind::Dataplane, "latest.json", "dataplane.svg"), (Kind::Scale, "scale.json", "scale.svg")]
    {
        let (text, _) = load(json);
        let fresh = render(kind, &format!("bench/results/{json}"), &text, None).unwrap();
        let committed = std::fs::read_to_string(results(chart)).unwrap();
        assert!(committed == fresh, "bench/results/{chart} is not what {json} draws now; {redraw}");
    }
    // aex.json records no date: its chart carries one in a caption note, so
    // everything but the caption is compared.
    let (text, _) = load("aex.json");
    let fresh = render(Kind::Aex, "bench/results/aex.json", &text, None).unwrap();
    let committed = std::fs::read_to_string(results("aex.svg")).unwrap();
    assert!(
        without_caption(&committed) == without_caption(&fresh),
        "bench/results/aex.svg is not what aex.json draws now; {redraw} --note \"measured DATE, ...\""
    );
    assert!(texts(&committed).iter().any(|l| l.starts_with("bench/results/aex.json: measured 20")));
}
