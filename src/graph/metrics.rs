//! Graph-generation metrics: MMD² of graph statistics under the conventions of the reference
//! evaluation code, validity, uniqueness, novelty and V.U.N.
//!
//! `docs/metrics.md` states every convention: histogram bins and normalisation, kernel and σ,
//! the EMD ground distance and its scaling, and the estimator.
//! In short: each graph gives a vector (degree histogram, clustering histogram, mean orbit
//! counts, spectral histogram); a vector may be normalised to sum 1; a kernel k compares two
//! vectors after padding the shorter with zeros; and the value is the biased estimate
//! MMD² = mean k(X, X) + mean k(Y, Y) − 2 mean k(X, Y) over all pairs, diagonal included.

use super::{iso, orbits, planar, sbm, spectrum, Graph, Progress};

/// How two statistic vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// exp(−d²/2σ²) with d = ½ Σ|xᵢ − yᵢ| (total variation).
    GaussianTv { sigma: f64 },
    /// exp(−d²/2σ²) with d the earth mover's distance under the ground distance
    /// |i − j| / `scaling`; for 1-D histograms d = Σᵢ |Fₓ(i) − F_y(i)| / `scaling`, with F the
    /// cumulative sums (over all but the last bin).
    GaussianEmd { sigma: f64, scaling: f64 },
    /// exp(−d²/2σ²) with d the Euclidean distance.
    GaussianL2 { sigma: f64 },
}

impl Kernel {
    /// The kernel's value on two vectors, the shorter padded with zeros.
    pub fn eval(&self, x: &[f64], y: &[f64]) -> f64 {
        let len = x.len().max(y.len());
        let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(0.0);
        let (d2, sigma) = match *self {
            Kernel::GaussianTv { sigma } => {
                let d = (0..len).map(|i| (at(x, i) - at(y, i)).abs()).sum::<f64>() / 2.0;
                (d * d, sigma)
            }
            Kernel::GaussianEmd { sigma, scaling } => {
                let (mut cx, mut cy, mut d) = (0.0, 0.0, 0.0);
                for i in 0..len.saturating_sub(1) {
                    cx += at(x, i);
                    cy += at(y, i);
                    d += (cx - cy).abs();
                }
                let d = d / scaling;
                (d * d, sigma)
            }
            Kernel::GaussianL2 { sigma } => {
                let d2 = (0..len).map(|i| (at(x, i) - at(y, i)).powi(2)).sum::<f64>();
                (d2, sigma)
            }
        };
        (-d2 / (2.0 * sigma * sigma)).exp()
    }

    fn describe(&self) -> String {
        match *self {
            Kernel::GaussianTv { sigma } => format!("gaussian-tv sigma={sigma}"),
            Kernel::GaussianEmd { sigma, scaling } => {
                format!("gaussian-emd sigma={sigma} scaling={scaling}")
            }
            Kernel::GaussianL2 { sigma } => format!("gaussian-l2 sigma={sigma}"),
        }
    }
}

/// How a statistic vector is normalised before the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalisation {
    /// Used as is (the orbit statistic).
    None,
    /// Divided by its sum (GraphRNN, GRAN).
    Sum,
    /// Divided by its sum plus 10⁻⁶ (SPECTRE, DiGress).
    SumPlusEpsilon,
}

impl Normalisation {
    fn apply(self, v: &[f64]) -> Vec<f64> {
        let s: f64 = v.iter().sum();
        match self {
            Normalisation::None => v.to_vec(),
            Normalisation::Sum => v.iter().map(|x| x / s).collect(),
            Normalisation::SumPlusEpsilon => v.iter().map(|x| x / (s + 1e-6)).collect(),
        }
    }
}

/// The kernel and normalisation of one statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatSpec {
    pub kernel: Kernel,
    pub normalisation: Normalisation,
}

/// A named evaluation convention.
#[derive(Debug, Clone, PartialEq)]
pub struct Convention {
    pub name: &'static str,
    pub degree: StatSpec,
    pub clustering: StatSpec,
    pub orbit: StatSpec,
    pub spectral: StatSpec,
}

/// The bins of the clustering-coefficient histogram, on [0, 1].
pub const CLUSTERING_BINS: usize = 100;
/// The bins of the spectral histogram, on [−10⁻⁵, 2].
pub const SPECTRAL_BINS: usize = 200;

/// The names [`convention`] knows; the first is the default.
pub const CONVENTIONS: [&str; 4] = ["spectre", "spectre-emd", "gran", "graphrnn"];

/// A convention by name.
pub fn convention(name: &str) -> Option<Convention> {
    let spec = |kernel, normalisation| StatSpec {
        kernel,
        normalisation,
    };
    use Kernel::*;
    use Normalisation::*;
    let tv = |sigma| GaussianTv { sigma };
    let emd = |sigma, scaling| GaussianEmd { sigma, scaling };
    let bins = CLUSTERING_BINS as f64;
    Some(match name {
        "spectre" | "digress" => Convention {
            name: "spectre",
            degree: spec(tv(1.0), SumPlusEpsilon),
            clustering: spec(tv(0.1), SumPlusEpsilon),
            orbit: spec(tv(30.0), None),
            spectral: spec(tv(1.0), SumPlusEpsilon),
        },
        "spectre-emd" | "digress-emd" => Convention {
            name: "spectre-emd",
            degree: spec(emd(1.0, 1.0), SumPlusEpsilon),
            clustering: spec(emd(0.1, bins), SumPlusEpsilon),
            orbit: spec(GaussianL2 { sigma: 30.0 }, None),
            spectral: spec(emd(1.0, 1.0), SumPlusEpsilon),
        },
        "gran" => Convention {
            name: "gran",
            degree: spec(tv(1.0), Sum),
            clustering: spec(tv(0.1), Sum),
            orbit: spec(tv(30.0), None),
            spectral: spec(tv(1.0), Sum),
        },
        "graphrnn" => Convention {
            name: "graphrnn",
            degree: spec(emd(1.0, 1.0), Sum),
            clustering: spec(emd(0.1, bins), Sum),
            orbit: spec(GaussianL2 { sigma: 30.0 }, None),
            spectral: spec(emd(1.0, 1.0), Sum),
        },
        _ => return Option::None,
    })
}

/// One metric `diffc metrics` can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Degree,
    Clustering,
    Orbit,
    Spectral,
    Validity,
    Unique,
    Novel,
    Vun,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Degree,
        Metric::Clustering,
        Metric::Orbit,
        Metric::Spectral,
        Metric::Validity,
        Metric::Unique,
        Metric::Novel,
        Metric::Vun,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Degree => "degree",
            Metric::Clustering => "clustering",
            Metric::Orbit => "orbit",
            Metric::Spectral => "spectral",
            Metric::Validity => "validity",
            Metric::Unique => "unique",
            Metric::Novel => "novel",
            Metric::Vun => "vun",
        }
    }

    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Which graphs are valid.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// Planar and connected.
    Planar,
    /// The stochastic-block-model test of [`sbm`].
    Sbm(sbm::SbmTest),
}

impl Validity {
    pub fn parse(name: &str) -> Option<Validity> {
        match name {
            "planar" => Some(Validity::Planar),
            "sbm" => Some(Validity::Sbm(sbm::SbmTest::default())),
            _ => None,
        }
    }

    pub fn check(&self, g: &Graph) -> bool {
        match self {
            Validity::Planar => planar::is_planar_and_connected(g),
            Validity::Sbm(test) => sbm::is_sbm(g, test),
        }
    }
}

/// What [`evaluate`] computes.
#[derive(Debug, Clone)]
pub struct Options {
    pub convention: Convention,
    pub metrics: Vec<Metric>,
    pub validity: Option<Validity>,
    pub threads: usize,
}

/// The values, in the order of `Options::metrics`.
#[derive(Debug, Clone)]
pub struct Report {
    pub convention: &'static str,
    pub generated: usize,
    pub reference: usize,
    pub train: Option<usize>,
    pub values: Vec<(Metric, f64)>,
    /// How each MMD metric was computed, e.g. `gaussian-tv sigma=1`.
    pub kernels: Vec<(Metric, String)>,
}

/// The degree histogram: entry d counts the nodes of degree d, up to the largest degree.
pub fn degree_histogram(g: &Graph) -> Vec<f64> {
    let max = (0..g.nodes()).map(|v| g.degree(v)).max().unwrap_or(0);
    let mut h = vec![0.0; max + 1];
    for v in 0..g.nodes() {
        h[g.degree(v)] += 1.0;
    }
    h
}

/// The clustering coefficient of every node: 2T / (d (d − 1)), and 0 below two neighbours.
pub fn clustering_coefficients(g: &Graph) -> Vec<f64> {
    (0..g.nodes())
        .map(|v| {
            let nv = g.neighbours(v);
            let d = nv.len();
            if d < 2 {
                return 0.0;
            }
            let mut twice_triangles = 0usize;
            for &w in nv {
                twice_triangles += count_common(nv, g.neighbours(w as usize));
            }
            if twice_triangles == 0 {
                0.0
            } else {
                twice_triangles as f64 / (d * (d - 1)) as f64
            }
        })
        .collect()
}

fn count_common(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut c) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => {
                c += 1;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    c
}

/// Counts of `values` in `bins` equal bins on [lo, hi], as numpy's `histogram` bins them:
/// edges lo + i·(hi − lo)/bins, each bin half-open but the last closed, values outside dropped.
pub fn histogram(values: &[f64], bins: usize, lo: f64, hi: f64) -> Vec<f64> {
    let step = (hi - lo) / bins as f64;
    let edge = |i: usize| {
        if i == bins {
            hi
        } else {
            i as f64 * step + lo
        }
    };
    let mut h = vec![0.0; bins];
    for &v in values {
        if !(v >= lo && v <= hi) {
            continue;
        }
        let mut i = (((v - lo) / (hi - lo)) * bins as f64) as usize;
        i = i.min(bins - 1);
        if v < edge(i) {
            i -= 1;
        } else if i + 1 < bins && v >= edge(i + 1) {
            i += 1;
        }
        h[i] += 1.0;
    }
    h
}

/// The histogram of clustering coefficients: [`CLUSTERING_BINS`] bins on [0, 1], as counts.
pub fn clustering_histogram(g: &Graph) -> Vec<f64> {
    histogram(&clustering_coefficients(g), CLUSTERING_BINS, 0.0, 1.0)
}

/// The orbit statistic: each of the 15 orbit counts summed over nodes, divided by the nodes.
pub fn orbit_statistic(g: &Graph) -> Vec<f64> {
    let counts = orbits::node_orbits(g);
    let n = g.nodes() as f64;
    (0..orbits::ORBITS)
        .map(|o| counts.iter().map(|c| c[o]).sum::<i64>() as f64 / n)
        .collect()
}

/// The spectral statistic: the normalised-Laplacian eigenvalues in [`SPECTRAL_BINS`] bins on
/// [−10⁻⁵, 2], divided by their sum.
pub fn spectral_pmf(g: &Graph) -> Vec<f64> {
    let eig = spectrum::normalized_laplacian_eigenvalues(g);
    let h = histogram(&eig, SPECTRAL_BINS, -1e-5, 2.0);
    let s: f64 = h.iter().sum();
    h.into_iter().map(|x| x / s).collect()
}

/// The biased MMD² estimate between two samples of (already normalised) vectors.
pub fn mmd2(x: &[Vec<f64>], y: &[Vec<f64>], kernel: Kernel, threads: usize) -> f64 {
    let disc = |a: &[Vec<f64>], b: &[Vec<f64>]| {
        if a.is_empty() || b.is_empty() {
            return f64::NAN;
        }
        let rows = super::par_map(
            a,
            threads,
            |s| b.iter().map(|t| kernel.eval(s, t)).sum::<f64>(),
            || {},
        );
        rows.iter().sum::<f64>() / (a.len() * b.len()) as f64
    };
    disc(x, x) + disc(y, y) - 2.0 * disc(x, y)
}

/// MMD² of one statistic under a spec: normalise, then [`mmd2`].
pub fn compute_mmd(x: &[Vec<f64>], y: &[Vec<f64>], spec: StatSpec, threads: usize) -> f64 {
    let x: Vec<Vec<f64>> = x.iter().map(|v| spec.normalisation.apply(v)).collect();
    let y: Vec<Vec<f64>> = y.iter().map(|v| spec.normalisation.apply(v)).collect();
    mmd2(&x, &y, spec.kernel, threads)
}

/// Computes the requested metrics of `generated` against `reference` (and `train`, for
/// novelty). Graphs without nodes are left out of the MMD statistics.
pub fn evaluate(
    generated: &[Graph],
    reference: &[Graph],
    train: Option<&[Graph]>,
    options: &Options,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report, String> {
    let threads = options.threads.max(1);
    let wants = |m: Metric| options.metrics.contains(&m);
    if (wants(Metric::Novel) || wants(Metric::Vun)) && train.is_none() {
        return Err("`novel` and `vun` need the training graphs (`--train`)".into());
    }
    if (wants(Metric::Validity) || wants(Metric::Vun)) && options.validity.is_none() {
        return Err("`validity` and `vun` need a validity test (`--validity planar|sbm`)".into());
    }
    let gen_nonempty: Vec<&Graph> = generated.iter().filter(|g| g.nodes() > 0).collect();
    let ref_nonempty: Vec<&Graph> = reference.iter().filter(|g| g.nodes() > 0).collect();
    let both: Vec<&Graph> = ref_nonempty.iter().chain(&gen_nonempty).copied().collect();
    let split = ref_nonempty.len();

    let stage = |name: &'static str, total: usize| {
        let done = std::sync::atomic::AtomicUsize::new(0);
        progress(Progress {
            stage: name,
            done: 0,
            total,
        });
        move || {
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(Progress {
                stage: name,
                done: d,
                total,
            });
        }
    };
    let statistic =
        |name: &'static str, f: &(dyn Fn(&Graph) -> Vec<f64> + Sync), spec: StatSpec| {
            let tick = stage(name, both.len());
            let stats = super::par_map(&both, threads, |g| f(g), tick);
            compute_mmd(&stats[..split], &stats[split..], spec, threads)
        };

    let mut values = Vec::new();
    let mut kernels = Vec::new();
    let c = &options.convention;
    let mut unique_flags: Option<Vec<bool>> = None;
    let mut in_train: Option<Vec<bool>> = None;
    let mut valid: Option<Vec<bool>> = None;
    for &metric in &options.metrics {
        let value = match metric {
            Metric::Degree => {
                kernels.push((metric, c.degree.kernel.describe()));
                statistic("degree", &degree_histogram, c.degree)
            }
            Metric::Clustering => {
                kernels.push((metric, c.clustering.kernel.describe()));
                statistic("clustering", &clustering_histogram, c.clustering)
            }
            Metric::Orbit => {
                kernels.push((metric, c.orbit.kernel.describe()));
                statistic("orbit counts", &orbit_statistic, c.orbit)
            }
            Metric::Spectral => {
                kernels.push((metric, c.spectral.kernel.describe()));
                statistic("spectra", &spectral_pmf, c.spectral)
            }
            Metric::Validity | Metric::Unique | Metric::Novel | Metric::Vun => {
                let n = generated.len() as f64;
                if generated.is_empty() {
                    f64::NAN
                } else {
                    let needs_unique = matches!(metric, Metric::Unique | Metric::Vun);
                    let needs_train = matches!(metric, Metric::Novel | Metric::Vun);
                    let needs_valid = matches!(metric, Metric::Validity | Metric::Vun);
                    let hashes = || {
                        let tick = stage("hashing", generated.len());
                        super::par_map(generated, threads, iso::wl_hash, tick)
                    };
                    let mut gen_hashes: Option<Vec<u64>> = None;
                    if needs_unique && unique_flags.is_none() {
                        let h = gen_hashes.get_or_insert_with(hashes);
                        let earlier = iso::first_isomorphic_earlier(generated, h);
                        unique_flags = Some(earlier.iter().map(Option::is_none).collect());
                    }
                    if needs_train && in_train.is_none() {
                        let pool = train.expect("checked above");
                        let h = gen_hashes.get_or_insert_with(hashes);
                        let tick = stage("hashing training graphs", pool.len());
                        let pool_hashes = super::par_map(pool, threads, iso::wl_hash, tick);
                        in_train = Some(iso::isomorphic_to_any(generated, h, pool, &pool_hashes));
                    }
                    if needs_valid && valid.is_none() {
                        let test = options.validity.expect("checked above");
                        let tick = stage("validity", generated.len());
                        valid = Some(super::par_map(generated, threads, |g| test.check(g), tick));
                    }
                    let count = |f: &dyn Fn(usize) -> bool| {
                        (0..generated.len()).filter(|&i| f(i)).count() as f64 / n
                    };
                    match metric {
                        Metric::Validity => count(&|i| valid.as_ref().expect("computed")[i]),
                        Metric::Unique => count(&|i| unique_flags.as_ref().expect("computed")[i]),
                        Metric::Novel => count(&|i| !in_train.as_ref().expect("computed")[i]),
                        _ => count(&|i| {
                            unique_flags.as_ref().expect("computed")[i]
                                && !in_train.as_ref().expect("computed")[i]
                                && valid.as_ref().expect("computed")[i]
                        }),
                    }
                }
            }
        };
        values.push((metric, value));
    }
    Ok(Report {
        convention: c.name,
        generated: generated.len(),
        reference: reference.len(),
        train: train.map(<[Graph]>::len),
        values,
        kernels,
    })
}
