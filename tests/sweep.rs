//! `diffc::sample::sweep`: the runs it plans, the calls it counts, its table, JSON and plots.

mod common;
use common::spec;
use diffc::sample::{self, sweep, Options as RunOptions};

fn options(samplers: &[&str], steps: &[usize], count: usize) -> sweep::Options {
    sweep::Options {
        samplers: samplers.iter().map(|s| s.to_string()).collect(),
        steps: steps.to_vec(),
        run: RunOptions {
            count,
            ..RunOptions::default()
        },
        validity: None,
        threads: 1,
    }
}

#[test]
fn a_sweep_runs_every_sampler_at_every_step_count_and_fixed_grids_once() {
    let p = spec("bfn_discrete.diff", "bfn_discrete");
    let data = diffc::data::generate("words", 1).unwrap();
    let opts = options(
        &["original", "bfn_solver2", "bfn_solver2_single"],
        &[3, 5],
        8,
    );
    let prep = sample::prepare(&p, &data, &opts.run).unwrap();
    let mut seen = Vec::new();
    let result = sweep::sweep(&p, &data, &prep, &opts, &mut |pt, i, n| {
        seen.push((pt.sampler.clone(), i, n))
    })
    .unwrap();
    let got: Vec<(&str, usize, bool, usize)> = result
        .points
        .iter()
        .map(|p| (p.sampler.as_str(), p.steps, p.fixed, p.calls))
        .collect();
    // `original` has a uniform grid and calls the network once more in its final map; the
    // solvers' grids are explicit lists of 10 steps, and the single-step solver calls the
    // network twice per step.
    assert_eq!(
        got,
        [
            ("original", 3, false, 4),
            ("original", 5, false, 6),
            ("bfn_solver2", 10, true, 10),
            ("bfn_solver2_single", 10, true, 20),
        ]
    );
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|(_, _, n)| *n == 4));
    assert_eq!(
        result.score_names(),
        ["in_train", "spelling", "bigram_tv"].map(String::from)
    );
    for pt in &result.points {
        for (_, v) in &pt.scores.values {
            assert!((0.0..=1.0).contains(v), "{pt:?}");
        }
    }
    let table = result.table();
    assert_eq!(table.lines().count(), 1 + 4 + 1, "{table}");
    assert!(table.lines().next().unwrap().contains("network calls"));
    assert!(
        table.contains("bfn_solver2_single") && table.contains("10*"),
        "{table}"
    );
    let json = result.json();
    assert_eq!(json["points"].as_array().unwrap().len(), 4);
    assert_eq!(json["points"][3]["network_calls"], 20);
    assert_eq!(json["points"][2]["fixed"], true);
    let plots = result.plots("bfn_discrete on words");
    let names: Vec<&str> = plots.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "sweep_in_train.png",
            "sweep_spelling.png",
            "sweep_bigram_tv.png"
        ]
    );
    assert!(plots.iter().all(|(_, png)| &png[1..4] == b"PNG"));
}

#[test]
fn a_sweep_point_is_the_run_of_its_sampler_at_its_steps() {
    // The sweep adds nothing to a run: the same settings give the same scores.
    let p = spec("dpm_solver.diff", "vp_linear");
    let data = diffc::data::generate("moons", 1).unwrap();
    let opts = options(&["dpmpp_2m", "euler"], &[4], 32);
    let prep = sample::prepare(&p, &data, &opts.run).unwrap();
    let result = sweep::sweep(&p, &data, &prep, &opts, &mut |_, _, _| {}).unwrap();
    for pt in &result.points {
        let run_opts = RunOptions {
            steps: Some(4),
            ..opts.run.clone()
        };
        let run = sample::run(&p, &pt.sampler, &prep, &run_opts, &mut |_| {}).unwrap();
        let scores = sample::score::score(&data, &run.samples, None, 1).unwrap();
        assert_eq!(pt.calls, 4);
        assert_eq!(pt.scores.values, scores.values, "{}", pt.sampler);
    }
}

#[test]
fn bad_sweeps_are_refused_before_running() {
    let p = spec("dpm_solver.diff", "vp_linear");
    for (samplers, steps, count, wants) in [
        (vec![], vec![5], 4, "at least one sampler"),
        (vec!["euler"], vec![], 4, "at least one step count"),
        (vec!["euler"], vec![0, 5], 4, "at least 1, not 0"),
        (vec!["euler"], vec![5, 5], 4, "given twice"),
        (vec!["euler", "euler"], vec![5], 4, "named twice"),
        (
            vec!["heun"],
            vec![5],
            4,
            "no sampler `heun` (it has dpm_solver1,",
        ),
        (vec!["euler"], vec![5], 0, "sample count"),
    ] {
        let e = sweep::plan(&p, &options(&samplers, &steps, count)).unwrap_err();
        assert!(e.contains(wants), "{samplers:?} {steps:?}: {e}");
    }
}
