//! `diffc data`: a generated dataset written to files.

#[derive(clap::Args)]
pub struct DataArgs {
    /// The dataset (community-small, grid, sbm, planar, words, moons, gaussians8,
    /// checkerboard, swissroll).
    name: String,
    /// The folder to write.
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    out: String,
    /// The dataset's seed (`diffc sample` draws its training data with `--data-seed`, 1 by
    /// default).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The number of graphs, points or sequences (the dataset's default otherwise).
    #[arg(long)]
    count: Option<usize>,
}

/// `diffc data`: graphs as edge lists (`graphs/NNNN.txt`) and as a padded adjacency stack
/// (`adjacency.npy`, float32 `[count, n, n]`, with `nodes.npy`, int64 `[count]`); points as
/// `points.npy` (float32 `[count, dim]`); sequences as `sequences.txt` and `sequences.npy`
/// (int64 `[count, len]`).
pub fn data(args: &DataArgs) -> Result<(), String> {
    use diffc::data::Dataset;
    use diffc::npy::{Array, Data};
    // The same bound as `diffc sample --count`, before anything is generated or allocated.
    let max = diffc::limits::MAX_COUNT;
    if let Some(n) = args.count.filter(|&n| n > max) {
        return Err(format!(
            "--count {n} is more than the {max} items one run may use (docs/datasets.md)"
        ));
    }
    let options = diffc::data::Options {
        count: args.count,
        size: None,
    };
    let set = diffc::data::generate_with(&args.name, args.seed, &options)?;
    let dir = std::path::Path::new(&args.out);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", args.out))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
    };
    let npy = |a: &Array| -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        diffc::npy::write(a, &mut bytes).map_err(|e| e.to_string())?;
        Ok(bytes)
    };
    match &set {
        Dataset::Graphs(graphs) => {
            std::fs::create_dir_all(dir.join("graphs"))
                .map_err(|e| format!("cannot create `{}/graphs`: {e}", args.out))?;
            let n = graphs.iter().map(|g| g.nodes()).max().unwrap_or(0);
            let mut adj = vec![0f32; graphs.len() * n * n];
            for (k, g) in graphs.iter().enumerate() {
                write(
                    &format!("graphs/{k:04}.txt"),
                    diffc::graph::io::write_edge_list(g).as_bytes(),
                )?;
                for (i, j) in g.edges() {
                    adj[k * n * n + i * n + j] = 1.0;
                    adj[k * n * n + j * n + i] = 1.0;
                }
            }
            write(
                "adjacency.npy",
                &npy(&Array {
                    shape: vec![graphs.len(), n, n],
                    data: Data::F32(adj),
                })?,
            )?;
            write(
                "nodes.npy",
                &npy(&Array {
                    shape: vec![graphs.len()],
                    data: Data::I64(graphs.iter().map(|g| g.nodes() as i64).collect()),
                })?,
            )?;
        }
        Dataset::Points {
            dim,
            points,
            labels,
        } => {
            write(
                "points.npy",
                &npy(&Array {
                    shape: vec![points.len() / dim.max(&1), *dim],
                    data: Data::F32(points.clone()),
                })?,
            )?;
            if let Some(labels) = labels {
                write(
                    "labels.npy",
                    &npy(&Array {
                        shape: vec![labels.len()],
                        data: Data::I64(labels.iter().map(|&c| i64::from(c)).collect()),
                    })?,
                )?;
            }
        }
        Dataset::Sequences { len, seqs, .. } => {
            write(
                "sequences.txt",
                diffc::data::words::to_lines(seqs).as_bytes(),
            )?;
            write(
                "sequences.npy",
                &npy(&Array {
                    shape: vec![seqs.len(), *len],
                    data: Data::I64(seqs.iter().flatten().map(|c| *c as i64).collect()),
                })?,
            )?;
        }
    }
    println!(
        "wrote {} items of `{}` to {}/",
        set.len(),
        args.name,
        args.out
    );
    Ok(())
}
