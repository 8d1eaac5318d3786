fn main() {
    let only = std::env::args().nth(1);
    for f in std::fs::read_dir("specs").unwrap() {
        let path = f.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let m = diffc::check::check_source(&text).0.unwrap();
        for p in &m.processes {
            if only.as_ref().is_some_and(|o| o != &p.name) {
                continue;
            }
            for s in &p.samplers {
                let sp = diffc::ir::lower::lower_sampler(p, &s.name).unwrap();
                let t = std::time::Instant::now();
                let plan = diffc::kernel::build::plan_sampler(p, &sp, &Default::default()).unwrap();
                let t1 = t.elapsed();
                let mut sizes = vec![];
                for k in &plan.kernels {
                    let mut n = 0;
                    let mut calls = 0;
                    k.walk(&mut |s| {
                        n += 1;
                        if matches!(s.inst, diffc::kernel::Inst::Call(..)) {
                            calls += 1
                        }
                    });
                    sizes.push((n, calls));
                }
                if let Ok(k) = std::env::var("SHOW") {
                    if let Some(x) = plan.kernels.iter().find(|x| x.name.ends_with(&k)) {
                        println!("{x}");
                    }
                }
                if std::env::var("NOCOMPILE").is_ok() {
                    println!("{} {} {:?}", p.name, s.name, sizes);
                    continue;
                }
                let c = diffc::cpu::compile(plan).unwrap();
                println!(
                    "{} {} kernels {:?} plan {:?} total {:?}",
                    p.name,
                    s.name,
                    sizes,
                    t1,
                    t.elapsed()
                );
                drop(c);
            }
        }
    }
}
