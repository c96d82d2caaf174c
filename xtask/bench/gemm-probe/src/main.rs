//! `gemm-probe M K N THREADS`: GFLOP/s of one f32 `C = A·B` through the `gemm` crate, best of
//! 20 after 3 warm-ups.
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("M K N THREADS")).collect();
    let [m, k, n, threads] = args[..] else { panic!("usage: gemm-probe M K N THREADS") };
    let a = vec![1.0f32; m * k];
    let b = vec![0.5f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let mut best = f64::INFINITY;
    for i in 0..23 {
        let t = Instant::now();
        // SAFETY: the pointers and strides describe the three row-major buffers above.
        unsafe {
            gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, k as isize, b.as_ptr(), 1, n as isize,
                0.0f32, 1.0f32, false, false, false, par);
        }
        if i >= 3 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    println!("{m}x{k}x{n} threads {threads}: {:.1} GFLOP/s", 2.0 * (m * n * k) as f64 / best / 1e9);
}
