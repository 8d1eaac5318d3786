//! Bayes' rule in the checker (E0403): a written Gaussian posterior against the one the forward
//! marginal implies, and a written categorical or Bernoulli posterior against Bayes' rule on
//! the one-step kernel and the marginal. The shipped DDPM, D3PM and EDGE posteriors pass, and
//! each, changed by 0.1 %, is caught; DiGress's differ at its clamped last step, and pass only
//! as `#[approximate]` (W0002); the enumeration limits warn (W0003). `tests/bad/125…133` hold
//! one-mistake specs.

fn errors(text: &str) -> Vec<(String, String)> {
    let (_, diags) = diffc::check::check_source(text);
    diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.code.as_str().to_string(), d.message.clone()))
        .collect()
}

#[test]
fn the_shipped_ddpm_posteriors_follow_from_their_marginals() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/ddpm.diff")).unwrap();
    assert!(errors(&text).is_empty(), "{:?}", errors(&text));
    // Each part of the posterior, 0.1 % off, in both processes.
    for (part, changed) in [
        ("c0 = post_c0(", "c0 = 1.001 * post_c0("),
        ("ct = post_ct(", "ct = 1.001 * post_ct("),
        ("var = post_var(", "var = 1.001 * post_var("),
    ] {
        assert_eq!(text.matches(part).count(), 2, "{part}");
        let bad = text.replace(part, changed);
        let errs = errors(&bad);
        assert_eq!(errs.len(), 2, "{part}: {errs:?}");
        for (code, message) in &errs {
            assert_eq!(code, "E0403", "{message}");
            assert!(message.contains("Bayes' rule gives"), "{message}");
        }
    }
}

/// Every diagnostic as (code, message, primary label).
fn diagnostics(text: &str) -> Vec<(String, String, String)> {
    let (_, diags) = diffc::check::check_source(text);
    diags
        .iter()
        .map(|d| {
            (
                d.code.as_str().to_string(),
                d.message.clone(),
                d.primary.message.clone(),
            )
        })
        .collect()
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(format!("{}/specs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_shipped_d3pm_and_edge_posteriors_follow_from_their_kernels() {
    for (spec, part, changed) in [
        (
            "d3pm.diff",
            "Categorical(d3pm_post(Q(t), Qbar(t-1), Qbar(t), x_t, onehot(x_0)))",
            "Categorical(0.999 * d3pm_post(Q(t), Qbar(t-1), Qbar(t), x_t, onehot(x_0)) + 0.001 * onehot(x_t))",
        ),
        ("edge.diff", "then p_re(t) else 0", "then 0.999 * p_re(t) else 0"),
    ] {
        let text = shipped(spec);
        // Not even a warning: every class combination is checked.
        assert!(diagnostics(&text).is_empty(), "{spec}: {:?}", diagnostics(&text));
        assert_eq!(text.matches(part).count(), 2, "{spec}");
        let errs = errors(&text.replace(part, changed));
        assert_eq!(errs.len(), 2, "{spec}: {errs:?}");
        for (code, message) in &errs {
            assert_eq!(code, "E0403", "{message}");
            assert!(message.contains("Bayes' rule gives"), "{message}");
        }
    }
}

#[test]
fn digress_posteriors_differ_from_bayes_rule_only_at_the_clamped_last_step() {
    let text = shipped("digress.diff");
    assert_eq!(text.matches("  #[approximate]\n").count(), 2);
    // As shipped: kept, with a warning each that names the largest difference.
    let diags = diagnostics(&text);
    assert_eq!(diags.len(), 2, "{diags:?}");
    for (code, message, _) in &diags {
        assert_eq!(code, "W0002", "{message}");
        assert!(message.starts_with("at t = 501, "), "{message}");
        assert!(message.contains("marked `#[approximate]`"), "{message}");
    }
    // Without the mark, the same two differences are errors.
    let errs = errors(&text.replace("  #[approximate]\n", ""));
    assert_eq!(errs.len(), 2, "{errs:?}");
    for (code, message) in &errs {
        assert_eq!(code, "E0403", "{message}");
        assert!(message.starts_with("at t = 501, "), "{message}");
    }
    assert!(errs[0].1.contains("X_t = 3, X_0 = 3"), "{}", errs[0].1);
    assert!(errs[1].1.contains("E_t = 3, E_0 = 3"), "{}", errs[1].1);
}

#[test]
fn a_mark_on_a_posterior_that_follows_bayes_rule_is_not_needed() {
    let text = shipped("d3pm.diff");
    let marked = text.replace(
        "  posterior x_{t-1} | x_t, x_0",
        "  #[approximate]\n  posterior x_{t-1} | x_t, x_0",
    );
    let diags = diagnostics(&marked);
    assert_eq!(diags.len(), 2, "{diags:?}");
    for (code, message, label) in &diags {
        assert_eq!(code, "W0002", "{message}");
        assert!(
            message.contains("follows Bayes' rule at every check point"),
            "{message}"
        );
        assert_eq!(label, "not needed");
    }
    // Only posteriors take the mark.
    let forward = text.replace(
        "  forward x_t | x_0 ~",
        "  #[approximate]\n  forward x_t | x_0 ~",
    );
    assert_eq!(errors(&forward)[0].0, "E0001");
}

/// D3PM's uniform kernel with K classes and T steps, posterior as in the shipped spec.
fn uniform(classes: usize, steps: usize) -> String {
    format!(
        "fn post(Qt, Qbar_prev, Qbar_t, xt, x0) =
  (onehot(xt) @ transpose(Qt)) * (onehot(x0) @ Qbar_prev) / dot(onehot(x0) @ Qbar_t, onehot(xt))
process p {{
  const K = {classes}
  const T = {steps}
  dim d
  field x : cat<K>[d]
  time t : 1..T data at 0
  schedule beta(t) in (0, 1) increasing = linspace(0.02, 0.5)
  schedule Q(t) = (1 - beta(t)) * eye(K) + beta(t) * ones(K, K) / K
  schedule Qbar(t) = cumprod(Q(t))
  forward x_t | x_{{t-1}} ~ Categorical(onehot(x_{{t-1}}) @ Q(t))
  forward x_t | x_0 ~ Categorical(onehot(x_0) @ Qbar(t))
  prior x_T ~ Categorical(ones(K) / K)
  posterior x_{{t-1}} | x_t, x_0 ~ Categorical(post(Q(t), Qbar(t-1), Qbar(t), x_t, x_0))
}}
"
    )
}

#[test]
fn the_enumeration_limits_are_reported() {
    // 40 classes, 1600 combinations, 256 at each of 5 times: partly checked.
    let diags = diagnostics(&uniform(40, 5));
    assert_eq!(diags.len(), 1, "{diags:?}");
    let (code, message, label) = &diags[0];
    assert_eq!(code, "W0003", "{message}");
    assert!(
        message.contains("of the 1600 class combinations"),
        "{message}"
    );
    assert_eq!(label, "partly verified");
    // With enough times every combination is checked, and a mistake is still found.
    assert!(diagnostics(&uniform(40, 20)).is_empty());
    // A mistake at one combination (x_t = 38, x_0 = 39), which only some of the times check.
    let post = "post(Q(t), Qbar(t-1), Qbar(t), x_t, x_0)";
    let wrong = uniform(40, 20).replace(
        &format!("Categorical({post})"),
        &format!(
            "Categorical(if x_0 == 39 then (if x_t == 38 then 0.999 * {post} + 0.001 * onehot(x_t) else {post}) else {post})"
        ),
    );
    let errs = errors(&wrong);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "E0403");
    assert!(errs[0].1.contains("x_t = 38, x_0 = 39"), "{}", errs[0].1);
    // More classes than are enumerated at one time: not checked.
    let diags = diagnostics(&uniform(300, 3));
    assert_eq!(diags.len(), 1, "{diags:?}");
    let (code, message, label) = &diags[0];
    assert_eq!(code, "W0003", "{message}");
    assert!(
        message.contains("300 classes are more than the 256"),
        "{message}"
    );
    assert_eq!(label, "not verified");
}
