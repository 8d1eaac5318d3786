//! Bayes' rule in the checker (E0403): a written Gaussian posterior against the one the forward
//! marginal implies. The shipped DDPM posteriors (linear and cosine β) pass, and each of their
//! parts, changed by 0.1 %, is caught; `tests/bad/125…131` hold one-mistake specs.

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
