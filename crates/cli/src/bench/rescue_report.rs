//! The human-readable report of `retake bench rescue`: setup, one table row per strategy, the
//! definitions behind each column, and the targets checked against the baselines.

use super::metrics::Metrics;
use super::{Args, BenchResult};

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "—".into())
}

fn hours(s: Option<f64>) -> String {
    s.map(|v| format!("{:.2} h", v / 3600.0))
        .unwrap_or_else(|| "—".into())
}

fn find<'a>(r: &'a BenchResult, name: &str) -> Option<&'a Metrics> {
    r.strategies.iter().map(|(m, _)| m).find(|m| m.name == name)
}

pub fn print(a: &Args, r: &BenchResult) {
    let c = &r.corpus;
    let failed = r
        .strategies
        .first()
        .map(|(m, _)| m.failed_first)
        .unwrap_or(0);
    let sys = c.segments.iter().filter(|s| s.systematic).count();
    println!("retake bench rescue — {}", r.scenario_path);
    if !r.scenario.description.is_empty() {
        println!("  {}", r.scenario.description);
    }
    println!(
        "  {} segments (seed {}), {failed} failed attempt 1, {sys} systematically broken; max_attempts {} for every strategy; \
         waves of {}; wall times on {} GPUs, parallel runs with parallelism {}",
        c.segments.len(),
        a.seed,
        r.max_attempts,
        a.wave,
        a.gpus,
        a.parallelism
    );
    println!("  scene types (one per profile; thresholds and trigger checks by the bench's conventions):");
    for line in super::corpus::describe(c) {
        println!("    {line}");
    }
    if !r.oracle_arms.is_empty() {
        let arms: Vec<String> = c
            .scenes
            .iter()
            .zip(&r.oracle_arms)
            .map(|(s, o)| {
                format!(
                    "{} → {} ({} of {} failed segments rescuable; {} with jitter)",
                    s.name,
                    o.arm.as_str(),
                    o.rescuable,
                    o.failed,
                    o.rescuable_with_jitter
                )
            })
            .collect();
        println!("  oracle's arm per scene type: {}", arms.join("; "));
    }
    println!();
    let header = format!(
        "{:<30}{:>11}{:>9}{:>9}{:>12}{:>10}{:>11}{:>10}{:>14}{:>9}{:>10}",
        "strategy",
        "rescued",
        "rescue",
        "trigger",
        "retry",
        "GPU-s per",
        "sys waste",
        "retries",
        "systematic",
        "mean",
        "BoN beat"
    );
    let header2 = format!(
        "{:<30}{:>11}{:>9}{:>9}{:>12}{:>10}{:>11}{:>10}{:>14}{:>9}{:>10}",
        "",
        "/failed",
        "rate",
        "rescue",
        "GPU-s",
        "rescued",
        "GPU-s",
        "/broken",
        "flags (false)",
        "overall",
        "1st pass"
    );
    println!("{header}\n{header2}");
    println!("{}", "-".repeat(header.len()));
    for (m, _) in &r.strategies {
        let beat = if m.best_of_n_searches == 0 {
            "—".to_owned()
        } else {
            pct(m.best_of_n_beat_first_pass_rate)
        };
        println!(
            "{:<30}{:>11}{:>9}{:>9}{:>12.0}{:>10}{:>11.0}{:>10.2}{:>14}{:>9}{:>10}",
            m.name,
            format!("{}/{}", m.rescued, m.failed_first),
            pct(m.rescue_rate),
            pct(m.rescue_rate_trigger_failures),
            m.retry_gpu_s,
            opt(m.gpu_s_per_rescued, 1),
            m.wasted_gpu_s_systematic,
            m.wasted_attempts_per_systematic,
            format!(
                "{} ({})",
                m.systematic_escalations, m.false_systematic_escalations
            ),
            opt(m.mean_selected_overall, 3),
            beat,
        );
    }
    println!();
    let k = a.parallelism;
    let header = format!(
        "{:<30}{:>12}{:>12}{:>14}{:>14}{:>14}{:>19}{:>21}",
        "time and parallelism",
        format!("wall K={}", a.gpus),
        format!("… par {k}"),
        "retried seg.",
        format!("… par {k}"),
        format!("rescue par {k}"),
        format!("GPU-s/resc. par {k}"),
        format!("retries/broken, p{k}")
    );
    println!(
        "{header}\n{:<30}{:>12}{:>12}{:>14}{:>14}{:>14}{:>19}{:>17}",
        "", "", "", "latency (s)", "", "", "", "(false flags)"
    );
    println!("{}", "-".repeat(header.len()));
    for (m, _) in &r.strategies {
        println!(
            "{:<30}{:>12}{:>12}{:>14}{:>14}{:>14}{:>19}{:>21}",
            m.name,
            hours(Some(m.wall_s)),
            hours(m.wall_s_parallel),
            opt(m.retried_latency_s, 1),
            opt(m.retried_latency_s_parallel, 1),
            m.rescue_rate_parallel
                .map(pct)
                .unwrap_or_else(|| "—".into()),
            opt(m.gpu_s_per_rescued_parallel, 1),
            match (
                m.wasted_attempts_per_systematic_parallel,
                m.false_systematic_escalations_parallel
            ) {
                (Some(w), Some(f)) => format!("{w:.2} ({f})"),
                _ => "—".into(),
            },
        );
    }
    println!();
    for (m, about) in &r.strategies {
        println!("  {:<30}{} [{}]", m.name, about, m.runs_on);
    }
    if let Some(ad) = find(r, "retake_adaptive") {
        let arms: Vec<String> = ad
            .arms
            .iter()
            .map(|(k, v)| format!("{k} {:.0}%", v * 100.0))
            .collect();
        println!("  retake_adaptive's retries by arm: {}", arms.join(", "));
    }
    if !r.budget.is_empty() {
        let b = r.budget[0].budget_gpu_s;
        println!(
            "\nWithin a fixed budget of {b:.0} GPU-s ({:.1} per segment; segments submitted in waves, retries compete with later originals)",
            b / c.segments.len().max(1) as f64
        );
        let header = format!(
            "{:<30}{:>10}{:>10}{:>10}{:>12}{:>14}{:>14}",
            "strategy",
            "rescued",
            "trigger",
            "passed",
            "spent GPU-s",
            "attempt 1 run",
            "budget_exh."
        );
        println!("{header}\n{}", "-".repeat(header.len()));
        for m in &r.budget {
            println!(
                "{:<30}{:>10}{:>10}{:>10}{:>12.0}{:>14}{:>14}",
                m.name,
                m.rescued,
                m.rescued_trigger,
                m.passed,
                m.spent_gpu_s,
                m.judged_first,
                m.budget_exhausted
            );
        }
        println!(
            "  (oracle: bench-local, its attempts in segment order cut where the budget ends)"
        );
    }
    println!("\nDefinitions");
    for line in [
        "rescue rate      segments whose attempt 1 failed QA and that ended passed / segments whose attempt 1 failed".to_owned(),
        "trigger rescue   the same, over segments whose attempt 1 failed trigger checks only".to_owned(),
        "retry GPU-s      GPU-seconds of every attempt numbered 2 or more, on any segment".to_owned(),
        "GPU-s per resc.  retry GPU-s / rescued segments".to_owned(),
        "sys waste        retry GPU-s on segments the simulation broke whatever the seed; retries/broken = those attempts per broken segment".to_owned(),
        "systematic flags segments escalated as systematic_failure (in brackets: ones the simulation had not broken)".to_owned(),
        "mean overall     mean `overall` of the selected attempts (every passed segment)".to_owned(),
        "BoN beat 1st     share of segments searched past their first pass whose selected attempt scored higher".to_owned(),
        format!("wall             makespan of the corpus on {} GPUs (list schedule; a segment's retries go before later segments' first attempts)", a.gpus),
        "latency          mean over retried segments of the sum of their rounds' longest attempt (time to a final answer on an idle pool)".to_owned(),
        format!("par {}            a second engine run with `parallelism` {} (bench-local strategies overlap the same attempts)", a.parallelism, a.parallelism),
    ] {
        println!("  {line}");
    }
    targets(r);
    println!("\n({:.1} s)", r.elapsed_s);
}

fn ratio(x: Option<f64>, y: Option<f64>) -> Option<f64> {
    match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => Some(x / y),
        _ => None,
    }
}

/// The recommended preset against the targets, and the one-line summary BENCHMARKS.md
/// reports per scenario.
fn smart_targets(r: &BenchResult, naive: &Metrics, oracle: &Metrics) {
    let Some(m) = find(r, "retake_smart") else {
        return;
    };
    let mark = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("  retake_smart (the recommended preset):");
    let gap = (m.rescue_rate_trigger_failures - naive.rescue_rate_trigger_failures) * 100.0;
    println!(
        "    trigger-failure rescue {} vs naive {} ({gap:+.1} points; target ≥ −1): {}",
        pct(m.rescue_rate_trigger_failures),
        pct(naive.rescue_rate_trigger_failures),
        mark(gap >= -1.0 - 1e-9)
    );
    let vs_oracle = ratio(m.gpu_s_per_rescued, oracle.gpu_s_per_rescued);
    println!(
        "    GPU-s per rescued {} = {}× the oracle's {} (target ≤ 1.3×): {}",
        opt(m.gpu_s_per_rescued, 1),
        opt(vs_oracle, 2),
        opt(oracle.gpu_s_per_rescued, 1),
        mark(vs_oracle.is_some_and(|x| x <= 1.3))
    );
    println!(
        "    retries per hopeless segment {:.2} (target ≤ 1.5; naive {:.2}): {}",
        m.wasted_attempts_per_systematic,
        naive.wasted_attempts_per_systematic,
        mark(m.systematic_segments == 0 || m.wasted_attempts_per_systematic <= 1.5)
    );
    let false_share = if m.systematic_escalations == 0 {
        0.0
    } else {
        m.false_systematic_escalations as f64 / m.systematic_escalations as f64
    };
    println!(
        "    false systematic escalations {} of {} ({}; target ≤ 10%): {}",
        m.false_systematic_escalations,
        m.systematic_escalations,
        pct(false_share),
        mark(false_share <= 0.1 + 1e-9)
    );
    let bn = r.budget.iter().find(|b| b.name == "naive_fixed_n");
    let bs = r.budget.iter().find(|b| b.name == "retake_smart");
    if let (Some(bn), Some(bs)) = (bn, bs) {
        println!(
            "    rescued within the budget (trigger failures) {} vs naive {} (all failures {} vs {}): {}",
            bs.rescued_trigger,
            bn.rescued_trigger,
            bs.rescued,
            bn.rescued,
            mark(bs.rescued_trigger > bn.rescued_trigger)
        );
    }
    if let Some(i) = r
        .strategies
        .iter()
        .position(|(x, _)| x.name == "retake_smart")
    {
        for (scene, setup) in r.corpus.scenes.iter().enumerate() {
            let os: Vec<_> = r.outcomes[i].iter().filter(|o| o.scene == scene).collect();
            let failed = os.iter().filter(|o| o.failed_first()).count();
            let rescued = os.iter().filter(|o| o.rescued()).count();
            let broken: Vec<_> = os.iter().filter(|o| o.systematic).collect();
            let flags: Vec<_> = os
                .iter()
                .filter(|o| o.review_reason.as_deref() == Some("systematic_failure"))
                .collect();
            // The false ones by label, so a kept database's decision on them can be read back.
            let false_flags: Vec<String> = flags
                .iter()
                .filter(|o| !o.systematic)
                .map(|o| super::corpus::label(o.index))
                .collect();
            let named = match false_flags.len() {
                0 => String::new(),
                n if n <= 8 => format!(": {}", false_flags.join(", ")),
                n => format!(": {}, … {} more", false_flags[..8].join(", "), n - 8),
            };
            println!(
                "    {}: rescued {rescued}/{failed}, retries per broken {:.2} ({} broken), systematic flags {} ({} false{named})",
                setup.name,
                broken.iter().map(|o| o.retries()).sum::<usize>() as f64 / broken.len().max(1) as f64,
                broken.len(),
                flags.len(),
                false_flags.len()
            );
        }
    }
    println!(
        "  summary | retake_smart | trigger rescue {:.2} / {:.2} | GPU-s per rescue {}× naive | {}× oracle | retries per broken {:.2} | false flags {}/{} | budget trigger rescues {} / {}",
        m.rescue_rate_trigger_failures,
        naive.rescue_rate_trigger_failures,
        opt(ratio(m.gpu_s_per_rescued, naive.gpu_s_per_rescued), 2),
        opt(vs_oracle, 2),
        m.wasted_attempts_per_systematic,
        m.false_systematic_escalations,
        m.systematic_escalations,
        bs.map(|b| b.rescued_trigger.to_string())
            .unwrap_or_else(|| "—".into()),
        bn.map(|b| b.rescued_trigger.to_string())
            .unwrap_or_else(|| "—".into()),
    );
}

fn targets(r: &BenchResult) {
    let (Some(naive), Some(oracle)) = (find(r, "naive_fixed_n"), find(r, "oracle")) else {
        return;
    };
    println!("\nTargets (vs naive_fixed_n at the same max_attempts, and the oracle):");
    smart_targets(r, naive, oracle);
    informed_bound(r, naive, oracle);
    for name in ["retake_systematic", "retake_adaptive"] {
        let Some(m) = find(r, name) else { continue };
        let mark = |ok: bool| if ok { "met" } else { "NOT met" };
        let rescue_ok = m.rescue_rate + 1e-9 >= naive.rescue_rate;
        let trig_ok = m.rescue_rate_trigger_failures + 1e-9 >= naive.rescue_rate_trigger_failures;
        let cost = match (m.gpu_s_per_rescued, naive.gpu_s_per_rescued) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y),
            _ => None,
        };
        let vs_oracle = match (m.gpu_s_per_rescued, oracle.gpu_s_per_rescued) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y),
            _ => None,
        };
        println!("  {name}:");
        println!(
            "    rescue rate {} vs {} (trigger failures {} vs {}): {} ({} on trigger failures)",
            pct(m.rescue_rate),
            pct(naive.rescue_rate),
            pct(m.rescue_rate_trigger_failures),
            pct(naive.rescue_rate_trigger_failures),
            mark(rescue_ok),
            mark(trig_ok)
        );
        println!(
            "    GPU-s per rescued {} = {} of naive's {} (target ≤ 50%): {}",
            opt(m.gpu_s_per_rescued, 1),
            opt(cost.map(|x| x * 100.0), 0) + "%",
            opt(naive.gpu_s_per_rescued, 1),
            mark(cost.is_some_and(|x| x <= 0.5))
        );
        println!(
            "    retries per systematic segment {:.2} (target ≤ 1.5; naive {:.2}): {}",
            m.wasted_attempts_per_systematic,
            naive.wasted_attempts_per_systematic,
            mark(m.systematic_segments == 0 || m.wasted_attempts_per_systematic <= 1.5)
        );
        println!(
            "    GPU-s per rescued {}× the oracle's {} (target ≤ 1.3×): {}",
            opt(vs_oracle, 2),
            opt(oracle.gpu_s_per_rescued, 1),
            mark(vs_oracle.is_some_and(|x| x <= 1.3))
        );
    }
}

/// The informed bound's rows: which targets a stopping rule that knew the simulation's model
/// could meet together, and the best it does on the other two while keeping the rescue target.
fn informed_bound(r: &BenchResult, naive: &Metrics, oracle: &Metrics) {
    if r.informed.is_empty() {
        return;
    }
    println!(
        "  informed bound (bench-local: knows each scene type's model (class shares, failure \
         probabilities, score ranges) and the oracle's arm, not a segment's class or an attempt's \
         outcome; retries any failure while the rule holds):"
    );
    println!("    rule                            | t    | trigger rescue vs naive | retries per broken | GPU-s per rescue vs oracle | rescue, retries, 1.3× targets");
    // Of the rows that keep the rescue target: the fewest retries per broken, the least GPU.
    let mut fewest: Option<(&super::InformedRow, f64)> = None;
    let mut cheapest: Option<(&super::InformedRow, f64)> = None;
    for row in &r.informed {
        let m = &row.metrics;
        let gap = (m.rescue_rate_trigger_failures - naive.rescue_rate_trigger_failures) * 100.0;
        let vs_oracle = ratio(m.gpu_s_per_rescued, oracle.gpu_s_per_rescued);
        let rescue_ok = gap >= -1.0 - 1e-9;
        let retries_ok = m.systematic_segments == 0 || m.wasted_attempts_per_systematic <= 1.5;
        let gpu_ok = vs_oracle.is_some_and(|x| x <= 1.3);
        let yes = |ok: bool| if ok { "yes" } else { "no" };
        println!(
            "    {:<31} | {:<4} | {:>+23.1} | {:>18.2} | {:>25}× | {}, {}, {}",
            row.rule.as_str(),
            row.threshold,
            gap,
            m.wasted_attempts_per_systematic,
            opt(vs_oracle, 2),
            yes(rescue_ok),
            yes(retries_ok),
            yes(gpu_ok)
        );
        if rescue_ok {
            let retries = m.wasted_attempts_per_systematic;
            if fewest.is_none_or(|b| retries < b.1) {
                fewest = Some((row, retries));
            }
            if let Some(v) = vs_oracle {
                if cheapest.is_none_or(|b| v < b.1) {
                    cheapest = Some((row, v));
                }
            }
        }
    }
    let at = |row: &super::InformedRow| format!("{}, t = {}", row.rule.as_str(), row.threshold);
    match (fewest, cheapest) {
        (Some((f, retries)), Some((c, vs))) => println!(
            "  summary | informed bound | keeping trigger rescue ≥ naive − 1: fewest retries per broken {retries:.2} ({}) | least GPU-s per rescue {vs:.2}× oracle ({})",
            at(f),
            at(c)
        ),
        _ => println!(
            "  summary | informed bound | no row keeps trigger rescue ≥ naive − 1"
        ),
    }
}
