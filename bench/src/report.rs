//! The printed table, the ratios, and the recall/QPS plot.

use crate::db::QueryStats;
use crate::insert::{InsertStats, BATCH};
use plotters::prelude::*;
use std::path::Path;

/// Build and query results of one engine.
#[derive(Debug, Clone)]
pub struct EngineResult {
    pub name: String,
    pub build_secs: f64,
    pub index_bytes: i64,
    /// Rows in the table when the index was built.
    pub built_rows: usize,
    pub inserts: Option<InsertStats>,
    pub passes: Vec<QueryStats>,
    /// The same queries from [`crate::CLIENTS`] clients at once.
    pub concurrent: Vec<QueryStats>,
    /// The filtered goal table, run last (it rebuilds table and index).
    pub filtered: Option<crate::filtered::FilteredRun>,
    /// vdb's distance-range pass.
    pub range: Option<crate::ranges::RangePass>,
}

/// An engine outside PostgreSQL to compare against (hnswlib in process):
/// its results, and a line saying how it was measured.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub result: EngineResult,
    pub note: String,
}

/// `b`'s QPS at recall `r`, interpolated on its recall/QPS curve; `None`
/// outside the recall range `b` reached.
pub fn qps_at_recall(b: &EngineResult, r: f64) -> Option<f64> {
    let mut pts: Vec<(f64, f64)> = b.passes.iter().map(|p| (p.recall, p.qps)).collect();
    pts.sort_by(|x, y| x.0.total_cmp(&y.0));
    pts.windows(2)
        .find(|w| w[0].0 <= r && r <= w[1].0)
        .map(|w| {
            if w[1].0 == w[0].0 {
                w[0].1.max(w[1].1)
            } else {
                let t = (r - w[0].0) / (w[1].0 - w[0].0);
                w[0].1 + t * (w[1].1 - w[0].1)
            }
        })
}

pub fn print(
    dataset: &str,
    rows: usize,
    queries: usize,
    results: &[EngineResult],
    baseline: Option<&Baseline>,
) {
    let all: Vec<&EngineResult> = results.iter().chain(baseline.map(|b| &b.result)).collect();
    println!();
    println!("dataset {dataset}: {rows} rows, {queries} queries, recall@10, one client, prepared statement");
    println!();
    println!("{:<16} {:>10} {:>12}", "engine", "build s", "index MiB");
    for r in &all {
        println!(
            "{:<16} {:>10.1} {:>12.1}",
            r.name,
            r.build_secs,
            r.index_bytes as f64 / 1048576.0
        );
    }
    if let [a, b] = results {
        println!(
            "{:<16} {:>9.2}x {:>11.2}x   ({} / {})",
            "ratio",
            a.build_secs / b.build_secs,
            a.index_bytes as f64 / b.index_bytes as f64,
            a.name,
            b.name
        );
    }
    println!();
    print!("{:>5}", "");
    for r in &all {
        print!(" | {:<32}", r.name);
    }
    println!();
    print!("{:>5}", "ef");
    for _ in &all {
        print!(
            " | {:>7} {:>8} {:>7} {:>7}",
            "recall", "QPS", "p50 ms", "p99 ms"
        );
    }
    println!();
    let n = all.iter().map(|r| r.passes.len()).max().unwrap_or(0);
    for i in 0..n {
        let ef = all
            .iter()
            .find_map(|r| r.passes.get(i))
            .map_or(0, |p| p.ef_search);
        print!("{ef:>5}");
        for r in &all {
            match r.passes.get(i) {
                Some(p) => print!(
                    " | {:>7.3} {:>8.0} {:>7.2} {:>7.2}",
                    p.recall, p.qps, p.p50_ms, p.p99_ms
                ),
                None => print!(" | {:>32}", ""),
            }
        }
        println!();
    }
    if let Some(b) = baseline {
        println!("({})", b.note);
    }
    print_inserts(results);
    if let [a, b] = results {
        println!();
        println!(
            "QPS at equal recall ({} / {}, {}'s QPS interpolated at {}'s recall):",
            a.name, b.name, b.name, a.name
        );
        print_ratios(a, b);
    }
    if let [a, b] = results {
        if !a.concurrent.is_empty() && !b.concurrent.is_empty() {
            print_concurrent(a, b);
        }
    }
    if let Some(base) = baseline {
        let base = &base.result;
        for a in results {
            println!();
            println!(
                "QPS at equal recall against the in-process ceiling ({} / {}, {}'s QPS interpolated):",
                a.name, base.name, base.name
            );
            print_ratios(a, base);
        }
    }
}

/// The passes from several clients at once, and their QPS at equal recall.
fn print_concurrent(a: &EngineResult, b: &EngineResult) {
    println!();
    println!(
        "{} clients at once, every query {} times, prepared statements:",
        crate::CLIENTS,
        crate::CONCURRENT_ROUNDS
    );
    println!("{:>5} | {:<32} | {:<32}", "", a.name, b.name);
    for (x, y) in a.concurrent.iter().zip(&b.concurrent) {
        println!(
            "{:>5} | {:>7.3} {:>8.0} {:>7.2} {:>7.2} | {:>7.3} {:>8.0} {:>7.2} {:>7.2}",
            x.ef_search, x.recall, x.qps, x.p50_ms, x.p99_ms, y.recall, y.qps, y.p50_ms, y.p99_ms
        );
    }
    let with = |r: &EngineResult| EngineResult {
        passes: r.concurrent.clone(),
        ..r.clone()
    };
    println!(
        "QPS at equal recall, {} clients ({} / {}):",
        crate::CLIENTS,
        a.name,
        b.name
    );
    print_ratios(&with(a), &with(b));
}

/// For each of `a`'s passes, its QPS against `b`'s at the same recall.
fn print_ratios(a: &EngineResult, b: &EngineResult) {
    for p in &a.passes {
        match qps_at_recall(b, p.recall) {
            Some(q) => println!(
                "  recall {:.3}: {:.0} vs {:.0} QPS = {:.2}x",
                p.recall,
                p.qps,
                q,
                p.qps / q
            ),
            None => println!(
                "  recall {:.3}: {:.0} QPS ({} did not reach this recall range)",
                p.recall, p.qps, b.name
            ),
        }
    }
}

/// The write workload's table and ratios.
fn print_inserts(results: &[EngineResult]) {
    let with: Vec<(&EngineResult, &InsertStats)> = results
        .iter()
        .filter_map(|r| r.inserts.as_ref().map(|i| (r, i)))
        .collect();
    let Some((first, _)) = with.first() else {
        return;
    };
    println!();
    println!(
        "inserts into the indexed table (index built on {} rows), rows/s:",
        first.built_rows
    );
    println!(
        "(synchronous_commit = off; \"no index\": the same rows into a table without an index)"
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>28} {:>8}",
        "engine",
        "1 client",
        "4 clients",
        format!("{BATCH}/stmt"),
        "then at ef 40: recall, QPS",
        "merged"
    );
    for (r, i) in &with {
        println!(
            "{:<22} {:>10.0} {:>10.0} {:>10.0} {:>28} {:>8}",
            r.name,
            i.indexed.single_1,
            i.indexed.single_4,
            i.indexed.batched,
            format!(
                "{:.3}, {:.0}{}",
                i.recall_after,
                i.qps_after,
                i.pending_after
                    .map_or(String::new(), |p| format!(" ({p} pending)"))
            ),
            i.drain_secs.map_or("-".into(), |d| format!("{d:.1} s"))
        );
        println!(
            "{:<22} {:>10.0} {:>10.0} {:>10.0}",
            "  same, no index", i.plain.single_1, i.plain.single_4, i.plain.batched
        );
    }
    if let [(a, x), (b, y)] = with[..] {
        println!(
            "{:<22} {:>9.1}x {:>9.1}x {:>9.1}x   ({} / {})",
            "ratio",
            x.indexed.single_1 / y.indexed.single_1,
            x.indexed.single_4 / y.indexed.single_4,
            x.indexed.batched / y.indexed.batched,
            a.name,
            b.name
        );
    }
}

/// Writes a recall (x) against QPS (y, log scale) plot.
pub fn plot(
    path: &Path,
    title: &str,
    results: &[&EngineResult],
) -> Result<(), Box<dyn std::error::Error>> {
    let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| "cannot register the DejaVu font")?;
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let all: Vec<&QueryStats> = results.iter().flat_map(|r| &r.passes).collect();
    let rmin = all.iter().map(|p| p.recall).fold(1.0, f64::min).max(0.0) - 0.02;
    let qmax = all.iter().map(|p| p.qps).fold(1.0, f64::max) * 1.3;
    let qmin = all.iter().map(|p| p.qps).fold(f64::MAX, f64::min) * 0.7;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(rmin..1.0f64, (qmin..qmax).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("recall@10")
        .y_desc("queries per second (log)")
        .draw()?;
    let colours = [
        RGBColor(200, 40, 40),
        RGBColor(40, 80, 200),
        RGBColor(0, 0, 0),
    ];
    let green = RGBColor(30, 150, 60);
    for (r, colour) in results.iter().zip(colours) {
        // The in-process ceiling is green whoever else is plotted.
        let colour = if r.name == "hnswlib" { green } else { colour };
        let pts: Vec<(f64, f64)> = r.passes.iter().map(|p| (p.recall, p.qps)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))?
            .label(&r.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
