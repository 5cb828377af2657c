//! `retake bench rescue`: rescue rate and GPU cost of each retry strategy on one simulated
//! corpus. Every strategy sees the same segments (scene type, `rng_seed`, attempt 1). The
//! strategies retake can run go through the real engine and store, each in a fresh SQLite
//! database; `always_best_of_n` and `oracle` are bench-local loops over the same core functions
//! (see `rescue_local.rs`). Nothing here decides a retry itself.

#[path = "rescue_corpus.rs"]
pub mod corpus;
#[path = "rescue_engine.rs"]
mod engine;
#[path = "rescue_informed.rs"]
pub mod informed;
#[path = "rescue_local.rs"]
mod local;
#[path = "rescue_metrics.rs"]
pub mod metrics;
#[path = "rescue_outcome.rs"]
pub mod outcome;
#[path = "rescue_plots.rs"]
mod plots;
#[path = "rescue_report.rs"]
mod report;

use anyhow::Context;
use engine::EnginePlan;
use metrics::{measure, Metrics};
use outcome::SegmentOutcome;
use retake_core::{RetryPolicy, SelectionMode};
use retake_engine::backends::Scenario;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Scenario file (default: the shipped examples/scenarios/demo.toml).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Segments in the corpus.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub segments: u32,
    /// Seeds the corpus; the same seed gives the same segments and results.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print `{"strategies": [{"name", "rescue_rate", "gpu_s_per_rescued", …}]}`.
    #[arg(long)]
    pub json: bool,
    /// Write SVG figures into this directory.
    #[arg(long)]
    pub plots: Option<PathBuf>,
    /// All attempts per segment, the original included (the same for every strategy; default:
    /// the scenario's `max_attempts`, else 4).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=10))]
    pub max_attempts: Option<u8>,
    /// `min_rescue_probability` of `retake_smart` (default: the "smart" preset's).
    #[arg(long)]
    pub min_rescue_probability: Option<f64>,
    /// Run `retake_smart` without `retry_regressions` (a retry's failure of a non-trigger check
    /// goes to review, as in the other retake strategies).
    #[arg(long)]
    pub no_regressions: bool,
    /// GPU budget of the budget-limited runs, in GPU-seconds per segment (default: the
    /// scenario's `budget_per_segment`, else what the oracle spends in all).
    #[arg(long)]
    pub budget_per_segment: Option<f64>,
    /// Skip the budget-limited runs.
    #[arg(long)]
    pub no_budget: bool,
    /// Retries of one segment at once in the "with parallelism" runs (1 skips them).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub parallelism: u8,
    /// GPUs in the simulated pool that the wall times assume.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub gpus: u32,
    /// Segments submitted together before the engine runs until idle (learning lags one wave).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub wave: u32,
    /// Engine runs at once (each in its own database).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub jobs: u32,
    /// Also run variants: retake_adaptive with best_of_n and cost-aware stopping, and
    /// retake_adaptive without systematic detection.
    #[arg(long)]
    pub variants: bool,
    /// `min_gain_per_gpu_second` of the best-of-N variant (overall points per GPU-second).
    #[arg(long, default_value_t = 0.0005)]
    pub min_gain: f64,
    /// `systematic_max_spread` of the strategies with systematic detection (default: the
    /// policy's default, 0.05).
    #[arg(long)]
    pub systematic_max_spread: Option<f64>,
    /// Run only these strategies (comma-separated names, e.g. `retake_smart`); naive_fixed_n and
    /// the oracle always run, since the targets are measured against them.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Keep each engine run's SQLite database in this directory (`<strategy>.db`,
    /// `<strategy>-parallel.db`, `<strategy>-budget.db`) instead of a throwaway one, to read
    /// every segment's attempts and decisions afterwards (`review_evidence` holds the stopping
    /// rule's numbers). Existing files of those names are replaced.
    #[arg(long)]
    pub keep_databases: Option<PathBuf>,
}

/// How a strategy runs.
#[derive(Clone)]
enum Runner {
    Engine(EnginePlan),
    AlwaysBestOfN,
    Oracle,
}

struct Strategy {
    name: &'static str,
    about: &'static str,
    runner: Runner,
}

fn strategies(a: &Args, n: u8) -> Vec<Strategy> {
    let base = RetryPolicy {
        enabled: true,
        max_attempts: n,
        ..RetryPolicy::default()
    };
    let spread = a
        .systematic_max_spread
        .unwrap_or(base.systematic_max_spread);
    let systematic = RetryPolicy {
        systematic_detection: true,
        systematic_max_spread: spread,
        ..base.clone()
    };
    let adaptive = RetryPolicy {
        adaptive_variation: true,
        ..systematic.clone()
    };
    let plan = |policy: RetryPolicy| {
        Runner::Engine(EnginePlan {
            policy,
            all_checks_trigger: false,
            budget: None,
        })
    };
    let smart = RetryPolicy {
        adaptive_variation: true,
        min_rescue_probability: Some(
            a.min_rescue_probability
                .unwrap_or(retake_core::policy::SMART_MIN_RESCUE_PROBABILITY),
        ),
        retry_regressions: !a.no_regressions,
        ..base.clone()
    };
    let mut v = vec![
        Strategy {
            name: "no_retry",
            about: "auto-retry off: every failure goes to review",
            runner: plan(RetryPolicy { enabled: false, max_attempts: n, ..RetryPolicy::default() }),
        },
        Strategy {
            name: "naive_fixed_n",
            about: "any failed check retried (new seed + jitter) until a pass or max_attempts",
            runner: Runner::Engine(EnginePlan { policy: base.clone(), all_checks_trigger: true, budget: None }),
        },
        Strategy {
            name: "always_best_of_n",
            about: "bench-local: max_attempts attempts of every segment, best passing kept",
            runner: Runner::AlwaysBestOfN,
        },
        Strategy {
            name: "retake_default",
            about: "default policy on, the scene type's trigger checks, first pass",
            runner: plan(base.clone()),
        },
        Strategy { name: "retake_systematic", about: "+ systematic_detection", runner: plan(systematic.clone()) },
        Strategy {
            name: "retake_adaptive",
            about: "+ adaptive_variation (Thompson sampling per scene type × check), + systematic_detection, first pass",
            runner: plan(adaptive.clone()),
        },
        Strategy {
            name: "retake_smart",
            about: "the \"smart\" preset: min_rescue_probability (stopping rule learnt per scene type × check) + adaptive_variation + retry_regressions, first pass",
            runner: plan(smart),
        },
        Strategy {
            name: "oracle",
            about: "bench-local: foresight of hopeless segments, of the best arm per scene type and of the first pass",
            runner: Runner::Oracle,
        },
    ];
    if a.variants {
        v.push(Strategy {
            name: "retake_adaptive_best_of_n",
            about: "retake_adaptive with best_of_n and min_gain_per_gpu_second",
            runner: plan(RetryPolicy {
                selection_mode: SelectionMode::BestOfN,
                min_gain_per_gpu_second: Some(a.min_gain),
                ..adaptive.clone()
            }),
        });
        v.push(Strategy {
            name: "retake_adaptive_no_systematic",
            about: "adaptive_variation alone",
            runner: plan(RetryPolicy {
                adaptive_variation: true,
                ..base.clone()
            }),
        });
    }
    v
}

/// Everything a finished benchmark knows, for the table, the JSON and the plots.
pub struct BenchResult {
    pub scenario_path: String,
    pub scenario: Scenario,
    pub corpus: corpus::Corpus,
    pub strategies: Vec<(Metrics, &'static str)>,
    pub outcomes: Vec<Vec<SegmentOutcome>>,
    pub oracle_arms: Vec<local::OracleArm>,
    pub max_attempts: u8,
    /// The budget-limited runs (empty with `--no-budget`).
    pub budget: Vec<metrics::BudgetMetrics>,
    /// The informed bound, per rule at each of its thresholds.
    pub informed: Vec<InformedRow>,
    pub elapsed_s: f64,
}

/// The informed bound (`rescue_informed.rs`) at one threshold on P(next attempt passes).
#[derive(Debug, Clone, serde::Serialize)]
pub struct InformedRow {
    pub rule: informed::Rule,
    pub threshold: f64,
    pub metrics: Metrics,
}

/// Strategies that also run within a fixed budget.
const BUDGET_STRATEGIES: [&str; 3] = ["naive_fixed_n", "retake_default", "retake_smart"];

pub async fn run(_g: crate::common::GlobalArgs, a: Args) -> anyhow::Result<()> {
    if !(a.min_gain.is_finite() && (0.0..=1.0).contains(&a.min_gain)) {
        anyhow::bail!(
            "--min-gain must be a number in 0..=1 (overall points per GPU-second); got {}",
            a.min_gain
        );
    }
    if let Some(s) = a.systematic_max_spread {
        if !(s.is_finite() && (0.0..=1.0).contains(&s)) {
            anyhow::bail!("--systematic-max-spread must be a number in 0..=1; got {s}");
        }
    }
    if let Some(p) = a.min_rescue_probability {
        let (lo, hi) = retake_core::policy::MIN_RESCUE_PROBABILITY_RANGE;
        if !(p.is_finite() && (lo..=hi).contains(&p)) {
            anyhow::bail!("--min-rescue-probability must be a number in {lo}..={hi}; got {p}");
        }
    }
    if let Some(b) = a.budget_per_segment {
        if !(b.is_finite() && b > 0.0) {
            anyhow::bail!(
                "--budget-per-segment must be a number > 0 (GPU-seconds per segment); got {b}"
            );
        }
    }
    let started = Instant::now();
    let (scenario, scenario_path) = match &a.scenario {
        Some(p) => (Scenario::load(p)?, p.display().to_string()),
        None => (
            Scenario::demo(),
            "examples/scenarios/demo.toml (built in)".to_owned(),
        ),
    };
    let max_attempts = a.max_attempts.or(scenario.max_attempts).unwrap_or(4);
    let corpus = Arc::new(corpus::build(&scenario, a.segments as usize, a.seed));
    let mut list = strategies(&a, max_attempts);
    if let Some(bad) = a
        .only
        .iter()
        .find(|o| !list.iter().any(|s| s.name == o.as_str()))
    {
        let names: Vec<&str> = list.iter().map(|s| s.name).collect();
        anyhow::bail!(
            "--only: no strategy named `{bad}` (strategies: {})",
            names.join(", ")
        );
    }
    if !a.only.is_empty() {
        list.retain(|s| {
            matches!(s.name, "naive_fixed_n" | "oracle") || a.only.iter().any(|o| o == s.name)
        });
    }
    let par = a.parallelism as usize;
    let naive_policy = RetryPolicy {
        enabled: true,
        max_attempts,
        ..RetryPolicy::default()
    };
    // The oracle first: its spending sets the default budget of the budget-limited runs.
    let (oracle_outcomes, oracle_arms) = local::oracle(&corpus, &naive_policy);
    let budget = if a.no_budget {
        None
    } else {
        let per_segment = a.budget_per_segment.or(scenario.budget_per_segment);
        Some(match per_segment {
            Some(b) => b * corpus.segments.len() as f64,
            None => oracle_outcomes
                .iter()
                .flat_map(|o| o.attempts.iter().map(|x| x.gpu_seconds))
                .sum::<f64>(),
        })
    };
    let scenario = Arc::new(scenario);

    // Engine runs: each strategy at parallelism 1, again at `par` unless it is 1, and within
    // the budget. Kind 0 = sequential, 1 = parallel, 2 = budget-limited.
    let mut jobs: Vec<(usize, u8, EnginePlan)> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        if let Runner::Engine(plan) = &s.runner {
            jobs.push((i, 0, plan.clone()));
            if par > 1 && plan.policy.enabled {
                let mut p = plan.clone();
                p.policy.parallelism = a.parallelism;
                jobs.push((i, 1, p));
            }
            if let (Some(b), true) = (budget, BUDGET_STRATEGIES.contains(&s.name)) {
                let mut p = plan.clone();
                p.budget = Some(b);
                jobs.push((i, 2, p));
            }
        }
    }
    if let Some(dir) = &a.keep_databases {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--keep-databases: creating {}", dir.display()))?;
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(a.jobs as usize));
    let mut set = tokio::task::JoinSet::new();
    for (i, parallel, plan) in jobs {
        let keep = a.keep_databases.as_ref().map(|d| {
            let suffix = ["", "-parallel", "-budget"][parallel as usize];
            d.join(format!("{}{suffix}.db", list[i].name))
        });
        let (scenario, corpus, sem, wave) = (
            scenario.clone(),
            corpus.clone(),
            sem.clone(),
            a.wave as usize,
        );
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let t = Instant::now();
            // Each run on a single-threaded runtime of its own: the engine runs one slot anyway,
            // and hand-offs between runtime threads cost more than the work (futex wake-ups).
            let r = tokio::task::spawn_blocking(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(engine::run(
                    &scenario,
                    &corpus,
                    &plan,
                    wave,
                    keep.as_deref(),
                ))
            })
            .await
            .map_err(|e| anyhow::anyhow!("engine run thread failed: {e}"))
            .and_then(|r| r);
            (i, parallel, r, t.elapsed().as_secs_f64())
        });
    }
    let mut sequential: Vec<Option<Vec<SegmentOutcome>>> = vec![None; list.len()];
    let mut parallel: Vec<Option<Vec<SegmentOutcome>>> = vec![None; list.len()];
    let mut budgeted: Vec<metrics::BudgetMetrics> = Vec::new();
    while let Some(j) = set.join_next().await {
        let (i, kind, r, secs) = j.context("an engine run panicked")?;
        let outcomes = r.with_context(|| format!("engine run of {}", list[i].name))?;
        tracing::info!(
            strategy = list[i].name,
            kind,
            seconds = secs,
            "engine run finished"
        );
        match kind {
            0 => sequential[i] = Some(outcomes),
            1 => parallel[i] = Some(outcomes),
            _ => budgeted.push(metrics::measure_budget(
                list[i].name,
                budget.unwrap_or(0.0),
                &corpus,
                &outcomes,
            )),
        }
    }
    budgeted.sort_by_key(|b| BUDGET_STRATEGIES.iter().position(|n| *n == b.name));
    if budget.is_some() {
        let mut o = oracle_outcomes.clone();
        budgeted.push(metrics::measure_budget(
            "oracle",
            budget.unwrap_or(0.0),
            &corpus,
            &metrics::within_budget(&mut o, budget.unwrap_or(0.0)),
        ));
    }

    let informed: Vec<InformedRow> = [informed::Rule::PerAttempt, informed::Rule::PerHopelessRetry]
        .into_iter()
        .flat_map(|rule| rule.thresholds().iter().map(move |&t| (rule, t)))
        .map(|(rule, threshold)| {
            let outcomes =
                informed::informed(&corpus, &naive_policy, &oracle_arms, rule, threshold);
            InformedRow {
                rule,
                threshold,
                metrics: measure(
                    &format!("informed_{threshold}"),
                    "bench-local",
                    &corpus,
                    &outcomes,
                    a.gpus as usize,
                    par,
                ),
            }
        })
        .collect();

    let firsts = local::first_attempts(&corpus);
    let mut oracle_outcomes = Some(oracle_outcomes);
    let mut results = Vec::new();
    let mut all_outcomes = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let (outcomes, runs_on) = match &s.runner {
            Runner::Engine(_) => (
                sequential[i].take().expect("every engine strategy ran"),
                "engine",
            ),
            Runner::AlwaysBestOfN => (
                local::always_best_of_n(&corpus, &naive_policy),
                "bench-local",
            ),
            Runner::Oracle => (
                oracle_outcomes.take().context("the oracle runs once")?,
                "bench-local",
            ),
        };
        // Every strategy must have judged the very same attempt 1 of every segment.
        for (o, f) in outcomes.iter().zip(&firsts) {
            let a1 = o.first().context("a segment without attempt 1")?;
            anyhow::ensure!(
                a1.passed == f.passed && (a1.gpu_seconds - f.gpu_seconds).abs() < 1e-6,
                "{}: segment {} attempt 1 differs from the simulation's ({} vs {}); the corpus conventions drifted from the store's",
                s.name,
                o.index,
                a1.passed,
                f.passed
            );
        }
        let mut m = measure(s.name, runs_on, &corpus, &outcomes, a.gpus as usize, par);
        if par > 1 {
            match (&s.runner, parallel[i].take()) {
                (Runner::Engine(_), Some(p)) => metrics::add_parallel(&mut m, &p),
                // No retries (no_retry) or bench-local: the same attempts, overlapped.
                _ => metrics::add_parallel(&mut m, &outcomes),
            }
        }
        results.push((m, s.about));
        all_outcomes.push(outcomes);
    }
    let result = BenchResult {
        scenario_path,
        scenario: (*scenario).clone(),
        corpus: Arc::try_unwrap(corpus)
            .ok()
            .context("corpus still shared")?,
        strategies: results,
        outcomes: all_outcomes,
        oracle_arms,
        max_attempts,
        budget: budgeted,
        informed,
        elapsed_s: started.elapsed().as_secs_f64(),
    };

    let mut plot_paths = Vec::new();
    if let Some(dir) = &a.plots {
        plots::ensure_dir(dir)?;
        let title = std::path::Path::new(&result.scenario_path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        let ms: Vec<Metrics> = result.strategies.iter().map(|(m, _)| m.clone()).collect();
        let p1 = plots::gpu_vs_rescue(dir, &title, &ms)?;
        let failed = result.outcomes[0]
            .iter()
            .filter(|o| o.failed_first())
            .count();
        let window = (failed / 8).clamp(20, 200);
        let series: Vec<(&str, Vec<(f64, f64)>)> = [
            "retake_default",
            "retake_adaptive",
            "retake_smart",
            "oracle",
        ]
        .iter()
        .filter_map(|name| {
            let i = result
                .strategies
                .iter()
                .position(|(m, _)| m.name == *name)?;
            Some((
                *name,
                metrics::rolling_rescue_rate(&result.outcomes[i], window),
            ))
        })
        .collect();
        let p2 = plots::learning(dir, &title, window, &series)?;
        plot_paths = vec![p1, p2];
        if !result.budget.is_empty() {
            plot_paths.push(plots::budget(dir, &title, &result.budget)?);
        }
        if let Some(naive) = ms.iter().find(|m| m.name == "naive_fixed_n") {
            let at = |m: &Metrics| {
                (
                    m.wasted_attempts_per_systematic,
                    (m.rescue_rate_trigger_failures - naive.rescue_rate_trigger_failures) * 100.0,
                )
            };
            let curves: Vec<plots::FrontierSeries> =
                [informed::Rule::PerAttempt, informed::Rule::PerHopelessRetry]
                    .into_iter()
                    .map(|rule| plots::FrontierSeries {
                        name: format!("informed bound, {}", rule.as_str()),
                        points: result
                            .informed
                            .iter()
                            .filter(|r| r.rule == rule)
                            .map(|r| at(&r.metrics))
                            .collect(),
                    })
                    .collect();
            let points: Vec<plots::FrontierSeries> = ["retake_smart", "naive_fixed_n"]
                .iter()
                .filter_map(|name| ms.iter().find(|m| m.name == *name))
                .map(|m| plots::FrontierSeries {
                    name: m.name.clone(),
                    points: vec![at(m)],
                })
                .collect();
            if result.corpus.segments.iter().any(|s| s.systematic) {
                plot_paths.push(plots::informed_frontier(dir, &title, &curves, &points)?);
            }
        }
        if let Some(i) = result
            .strategies
            .iter()
            .position(|(m, _)| m.name == "retake_adaptive")
        {
            let arm_window = 60;
            let series: Vec<(String, Vec<(f64, f64)>)> = result
                .oracle_arms
                .iter()
                .enumerate()
                .filter(|(_, o)| o.rescuable > o.rescuable_with_jitter)
                .map(|(scene, o)| {
                    let name = format!("{}: {}", result.corpus.scenes[scene].name, o.arm.as_str());
                    (
                        name,
                        metrics::rolling_arm_share(&result.outcomes[i], scene, o.arm, arm_window),
                    )
                })
                .collect();
            if !series.is_empty() {
                plot_paths.push(plots::arms(dir, &title, arm_window, &series)?);
            }
        }
    }
    if a.json {
        let v: Vec<&Metrics> = result.strategies.iter().map(|(m, _)| m).collect();
        println!(
            "{}",
            serde_json::json!({
                "strategies": v,
                "budget": result.budget,
                "informed": result.informed,
                "max_attempts": result.max_attempts,
            })
        );
    } else {
        report::print(&a, &result);
        for p in &plot_paths {
            println!("plot: {}", p.display());
        }
    }
    Ok(())
}
