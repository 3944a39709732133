//! Distances between sparse vectors kept packed in a fixed number of
//! `f32` words, as a `sparsevec` index stores them:
//!
//! ```text
//!   word 0: dimensions (u32 bits)   word 1: non-zeros n (u32 bits)
//!   words 2 .. 2+K: indices (u32 bits, ascending; the first n used)
//!   words 2+K .. 2+2K: values (f32; the first n used)
//! ```
//!
//! K, the capacity, is the index's; unused places are zero. The distances
//! merge the two index lists, as pgvector's do.

/// Words of a packed vector holding up to `capacity` non-zeros.
pub fn words_for(capacity: usize) -> usize {
    2 + 2 * capacity
}

/// Packs a sparse vector (indices ascending) into `words_for(capacity)`
/// words; `None` when it has more non-zeros than that holds.
pub fn pack(dim: u32, indices: &[u32], values: &[f32], capacity: usize) -> Option<Vec<f32>> {
    let n = indices.len().min(values.len());
    if n > capacity {
        return None;
    }
    let mut out = vec![0.0f32; words_for(capacity)];
    out[0] = f32::from_bits(dim);
    out[1] = f32::from_bits(n as u32);
    for (slot, &i) in out[2..2 + n].iter_mut().zip(indices) {
        *slot = f32::from_bits(i);
    }
    out[2 + capacity..2 + capacity + n].copy_from_slice(&values[..n]);
    Some(out)
}

/// The used values of a packed vector, to scale in place.
pub fn values_mut(packed: &mut [f32]) -> &mut [f32] {
    let capacity = packed.len().saturating_sub(2) / 2;
    let n = (packed.get(1).map_or(0, |w| w.to_bits()) as usize).min(capacity);
    &mut packed[2 + capacity..2 + capacity + n]
}

/// The used index words and values of a packed vector.
fn raw_parts(packed: &[f32]) -> (&[f32], &[f32]) {
    let capacity = packed.len().saturating_sub(2) / 2;
    let n = (packed.get(1).map_or(0, |w| w.to_bits()) as usize).min(capacity);
    (&packed[2..2 + n], &packed[2 + capacity..2 + capacity + n])
}

/// Calls `f(x, y)` for every index in either vector, 0 for the side
/// without it, walking the two ascending index lists together.
fn merge(a: &[f32], b: &[f32], mut f: impl FnMut(f32, f32)) {
    let (ai, av) = raw_parts(a);
    let (bi, bv) = raw_parts(b);
    let (mut i, mut j) = (0, 0);
    while i < ai.len() && j < bi.len() {
        match ai[i].to_bits().cmp(&bi[j].to_bits()) {
            std::cmp::Ordering::Equal => {
                f(av[i], bv[j]);
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                f(av[i], 0.0);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                f(0.0, bv[j]);
                j += 1;
            }
        }
    }
    av[i..].iter().for_each(|&x| f(x, 0.0));
    bv[j..].iter().for_each(|&y| f(0.0, y));
}

pub fn l2_squared(a: &[f32], b: &[f32]) -> f64 {
    let mut sum = 0.0f64;
    merge(a, b, |x, y| sum += (f64::from(x) - f64::from(y)).powi(2));
    sum
}

pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    let (ai, av) = raw_parts(a);
    let (bi, bv) = raw_parts(b);
    let (mut i, mut j, mut sum) = (0, 0, 0.0f64);
    while i < ai.len() && j < bi.len() {
        match ai[i].to_bits().cmp(&bi[j].to_bits()) {
            std::cmp::Ordering::Equal => {
                sum += f64::from(av[i]) * f64::from(bv[j]);
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    sum
}

pub fn l1(a: &[f32], b: &[f32]) -> f64 {
    let mut sum = 0.0f64;
    merge(a, b, |x, y| sum += (f64::from(x) - f64::from(y)).abs());
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(indices: &[u32], values: &[f32], dim: usize) -> Vec<f32> {
        let mut d = vec![0.0; dim];
        for (&i, &v) in indices.iter().zip(values) {
            d[i as usize] = v;
        }
        d
    }

    #[test]
    fn distances_match_dense_ones() {
        let (ai, av) = (vec![0u32, 3, 7, 9], vec![1.5f32, -2.0, 0.25, 4.0]);
        let (bi, bv) = (vec![1u32, 3, 9], vec![2.0f32, 1.0, -1.0]);
        let (a, b) = (
            pack(10, &ai, &av, 6).expect("fits"),
            pack(10, &bi, &bv, 6).expect("fits"),
        );
        let (da, db) = (dense(&ai, &av, 10), dense(&bi, &bv, 10));
        let close = |x: f64, y: f64| assert!((x - y).abs() < 1e-9, "{x} vs {y}");
        close(
            l2_squared(&a, &b),
            crate::distance::scalar::l2_squared(&da, &db),
        );
        close(dot(&a, &b), crate::distance::scalar::dot(&da, &db));
        close(l1(&a, &b), crate::distance::scalar::l1(&da, &db));
        assert_eq!(pack(10, &ai, &av, 3), None);
        let empty = pack(10, &[], &[], 6).expect("fits");
        close(
            l2_squared(&a, &empty),
            av.iter().map(|&x| f64::from(x).powi(2)).sum(),
        );
        assert_eq!(words_for(6), 14);
    }
}
