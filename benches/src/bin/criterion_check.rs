//! Compares the last criterion run (`new`) with a saved baseline and fails on a regression of
//! more than 20 % (`benches/README.md#regressions`).
//!
//! On these shared machines a whole run can be 50 % slower than the one before it, so each
//! benchmark is also compared *relative to a reference benchmark of the same run* (the
//! placement engine to sorting 1,000 keys, the capacity cache to a bare `DashMap::get`): load
//! slows both alike and cancels out, a slower engine does not. A benchmark fails when that
//! normalized ratio exceeds the threshold (benchmarks without a reference: the raw ratio).
//!
//! ```sh
//! cargo bench -p fedstate-benches -- --save-baseline before     # on the old commit
//! cargo bench -p fedstate-benches -- --baseline before          # on the new one
//! cargo run -p fedstate-benches --bin criterion_check -- --baseline before
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "criterion_check")]
struct Args {
    /// The saved baseline (`--save-baseline NAME` of an earlier run).
    #[arg(long, default_value = "before")]
    baseline: String,
    /// Criterion's output directory.
    #[arg(long, default_value = "target/criterion")]
    dir: PathBuf,
    /// Largest accepted slowdown, as a fraction.
    #[arg(long, default_value_t = 0.20)]
    threshold: f64,
    /// Only benchmarks whose id contains this.
    #[arg(long)]
    filter: Option<String>,
}

/// The reference benchmark of the same run that `id` is normalized by.
fn reference(id: &str) -> Option<&'static str> {
    if id.starts_with("estimator/cache_hit/") && id != "estimator/cache_hit/baseline_dashmap_get" {
        Some("estimator/cache_hit/baseline_dashmap_get")
    } else if id.starts_with("placement/") {
        Some("baseline/sort_keys/1000_clusters")
    } else {
        None
    }
}

/// Median point estimate (ns) of the run in `dir` (`…/new` or `…/<baseline>`).
fn median(dir: &Path) -> anyhow::Result<f64> {
    let path = dir.join("estimates.json");
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("read {}", path.display()))?,
    )?;
    v["median"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("no median in {}", path.display()))
}

/// Every benchmark under `root` with a `new` run: full id → its directory.
fn benchmarks(root: &Path, out: &mut BTreeMap<String, PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(root).with_context(|| format!("read {}", root.display()))? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let meta = path.join("new").join("benchmark.json");
        if meta.is_file() {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta)?)?;
            if let Some(id) = v["full_id"].as_str() {
                out.insert(id.to_owned(), path.clone());
            }
        }
        benchmarks(&path, out)?;
    }
    Ok(())
}

/// One comparison: raw ratio new/saved, and normalized by the reference's ratio.
#[derive(Debug, PartialEq)]
struct Change {
    raw: f64,
    normalized: Option<f64>,
}

fn change(new: f64, saved: f64, reference: Option<(f64, f64)>) -> Change {
    let raw = new / saved;
    Change {
        raw,
        normalized: reference.map(|(rn, rs)| raw / (rn / rs)),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut all = BTreeMap::new();
    benchmarks(&args.dir, &mut all)?;
    let runs = |id: &str| -> Option<(f64, f64)> {
        let dir = all.get(id)?;
        Some((
            median(&dir.join("new")).ok()?,
            median(&dir.join(&args.baseline)).ok()?,
        ))
    };
    let mut failed = Vec::new();
    let mut compared = 0;
    println!("| benchmark | saved | now | now / saved | relative to the same run's reference |");
    println!("|---|---:|---:|---:|---:|");
    for id in all.keys() {
        if args
            .filter
            .as_ref()
            .is_some_and(|f| !id.contains(f.as_str()))
        {
            continue;
        }
        let Some((new, saved)) = runs(id) else {
            continue;
        };
        compared += 1;
        let reference = reference(id).and_then(runs);
        let c = change(new, saved, reference);
        let worst = c.normalized.unwrap_or(c.raw);
        let mark = if worst > 1.0 + args.threshold {
            failed.push(id.clone());
            " **regressed**"
        } else {
            ""
        };
        println!(
            "| {id} | {:.3} µs | {:.3} µs | {:.2} | {}{mark} |",
            saved / 1000.0,
            new / 1000.0,
            c.raw,
            c.normalized
                .map_or_else(|| "—".to_owned(), |n| format!("{n:.2}"))
        );
    }
    if compared == 0 {
        bail!(
            "no benchmark under {} has both a `new` run and the baseline `{}`: run `cargo bench -p fedstate-benches -- --baseline {}` first",
            args.dir.display(),
            args.baseline,
            args.baseline
        );
    }
    if !failed.is_empty() {
        bail!(
            "{} of {compared} benchmarks more than {:.0} % slower than baseline `{}`: {}",
            failed.len(),
            args.threshold * 100.0,
            args.baseline,
            failed.join(", ")
        );
    }
    println!(
        "\n{compared} benchmarks within {:.0} % of baseline `{}`",
        args.threshold * 100.0,
        args.baseline
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_that_slows_the_reference_alike_is_not_a_regression() {
        // Everything 1.5× slower: the raw ratio says 1.5, relative to the reference 1.0.
        let c = change(150.0, 100.0, Some((30.0, 20.0)));
        assert!((c.raw - 1.5).abs() < 1e-9);
        assert!((c.normalized.unwrap_or(0.0) - 1.0).abs() < 1e-9);
        // The engine alone 1.3× slower.
        let c = change(130.0, 100.0, Some((20.0, 20.0)));
        assert!((c.normalized.unwrap_or(0.0) - 1.3).abs() < 1e-9);
        assert_eq!(change(1.0, 2.0, None).normalized, None);
    }

    #[test]
    fn references_are_chosen_by_group() {
        assert_eq!(
            reference("placement/Uniform/5000_clusters/7_members"),
            Some("baseline/sort_keys/1000_clusters")
        );
        assert_eq!(
            reference("estimator/cache_hit/capacity_lookup"),
            Some("estimator/cache_hit/baseline_dashmap_get")
        );
        assert_eq!(reference("estimator/cache_hit/baseline_dashmap_get"), None);
        assert_eq!(reference("estimator/fanout_100/99_healthy_1_to_5ms"), None);
    }
}
