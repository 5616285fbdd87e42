//! Exact pruning for the CPU diversity sampler (issue 20): the picks of the unpruned sampler,
//! pick for pick, without reading the points whose nearest centre provably cannot change.
//!
//! Every point keeps its nearest squared distance — bit for bit the unpruned sampler's, being the
//! same `squared_distance` of the same two rows — and the slot of the centre that attains it;
//! points are grouped by that centre. A new centre c cannot lower any distance in a group whose
//! centre g has d(g, c) ≥ 2·r_g (r_g: the group's largest distance), since then
//! d(x, c) ≥ d(g, c) − d(x, g) ≥ 2·r_g − r_g ≥ d(x, g) for every member x; such a group is skipped
//! whole. The test carries the rounding error of the computed distances ([`Bounds`]), so a skip
//! proves that the unpruned pass would have left every distance of the group as it was.
//!
//! Each group keeps its exact largest distance (lowest index on ties), so T = 0 takes the
//! unpruned argmax from the group maxima, and T > 0 draws over the identical distances in index
//! order ([`Draw::IndexOrder`]: identical picks) or walks group weight sums first
//! ([`Draw::Grouped`]: the same distribution, not the same picks for a seed).
//!
//! [`Pruning::Auto`] starts unpruned (a streaming pass that also records each point's centre) and
//! every few centres probes what the bounds would skip for the incoming centre; it prunes while
//! that pays, and goes back to streaming when a window of pruned centres skipped too little.
use super::{diversity_sample_unpruned, draw_index_order, pick, squared_distance, Embeddings, SelectError};
use rand::Rng;

/// Whether distance passes skip the groups the triangle inequality rules out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pruning {
    /// Prune while it skips enough distance evaluations, stream otherwise (measured as it runs).
    #[default]
    Auto,
    /// Always prune (for tests and measurements).
    Always,
    /// The unpruned sampler itself: one full distance pass per centre.
    Never,
}

/// How a pick at T > 0 is drawn while pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Draw {
    /// The unpruned sampler's draw: one uniform number against the cumulative weights in index
    /// order, O(N) per pick. Picks are identical to the unpruned sampler's.
    #[default]
    IndexOrder,
    /// Walk the groups' weight sums, then the members of one group: O(groups + group size) per
    /// pick. The same distribution, and the same random numbers consumed, but not the same picks
    /// for a seed (the cumulative order differs). T = 0 is unaffected.
    Grouped,
}

/// Options of [`diversity_sample_stats`]; the default is what [`super::diversity_sample`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiversityOptions {
    pub pruning: Pruning,
    pub draw: Draw,
}

/// Counts of the work one sampling run did, to report how much pruning saved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiversityStats {
    /// Number of points N.
    pub points: u64,
    /// Centres whose distances were folded in (distinct labeled points and picks; the pruned
    /// sampler skips the pass after the last pick, which no pick needs).
    pub centres: u64,
    /// Point–centre distances computed.
    pub point_evaluations: u64,
    /// Point–centre distances an unpruned pass over the same centres computes and this run did
    /// not: `points · centres − point_evaluations`.
    pub skipped: u64,
    /// Centre–centre distances computed for the bounds (the overhead of pruning, probes included).
    pub centre_evaluations: u64,
    /// Centres whose pass was pruned.
    pub pruned_centres: u64,
    /// Switches between pruned and streaming passes.
    pub switches: u64,
}

impl DiversityStats {
    /// Fraction of the unpruned passes' point–centre distances that were skipped.
    pub fn skipped_fraction(&self) -> f64 {
        let all = self.points * self.centres;
        if all == 0 {
            0.0
        } else {
            self.skipped as f64 / all as f64
        }
    }
}

/// [`super::diversity_sample`] with a choice of pruning and draw, also returning the work done.
/// With [`Draw::IndexOrder`] (the default) the picks equal the unpruned sampler's for every
/// [`Pruning`].
pub fn diversity_sample_stats(
    emb: &Embeddings,
    k: usize,
    temperature: f64,
    labeled: &[usize],
    rng: &mut impl Rng,
    options: DiversityOptions,
) -> Result<(Vec<usize>, DiversityStats), SelectError> {
    let policy = match options.pruning {
        Pruning::Auto => Policy::AUTO,
        Pruning::Always => Policy::ALWAYS,
        Pruning::Never => return unpruned_with_stats(emb, k, temperature, labeled, rng),
    };
    sample(emb, k, temperature, labeled, rng, options.draw, policy)
}

fn unpruned_with_stats(
    emb: &Embeddings,
    k: usize,
    temperature: f64,
    labeled: &[usize],
    rng: &mut impl Rng,
) -> Result<(Vec<usize>, DiversityStats), SelectError> {
    let chosen = diversity_sample_unpruned(emb, k, temperature, labeled, rng)?;
    let mut distinct = labeled.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let n = emb.len() as u64;
    let centres = (distinct.len() + chosen.len()) as u64;
    let stats = DiversityStats { points: n, centres, point_evaluations: n * centres, ..Default::default() };
    Ok((chosen, stats))
}

/// When to prune. `Auto`'s numbers are a guess, not yet measured (issue 20's benchmark rows).
#[derive(Debug, Clone, Copy)]
struct Policy {
    start_pruned: bool,
    adaptive: bool,
    /// Pruned centres per judgement of the skipped fraction.
    window: usize,
    /// While streaming, probe at every this many centres (≥ 1; the first probe at the 2nd).
    probe_every: usize,
    /// Go back to streaming when a window skipped less than this fraction (overhead counted).
    stay_above: f64,
    /// Start pruning when a probe predicts at least this fraction skipped (overhead counted).
    start_above: f64,
}

impl Policy {
    const AUTO: Policy =
        Policy { start_pruned: false, adaptive: true, window: 8, probe_every: 8, stay_above: 0.55, start_above: 0.65 };
    const ALWAYS: Policy = Policy { start_pruned: true, adaptive: false, ..Policy::AUTO };
}

/// Rounding bounds of `squared_distance` on rows of width `dim`. With D the exact Euclidean
/// distance of two f32 rows, the computed s satisfies (1 − γ)·D² − a ≤ s ≤ (1 + γ)·D² + a:
/// each term (x − y)² carries at most 3 roundings of relative size u = 2⁻²⁴, and each term
/// passes at most dim/8 + 9 additions of non-negative numbers (accumulator chain, the sum of the
/// eight accumulators, the tail), so n = dim + 16 roundings bound every path and γ = n·u/(1 − n·u).
/// `a` covers underflow, at most 2⁻¹⁵⁰ per multiplication (taken as 2⁻¹²⁶ per operation, so
/// even flush-to-zero arithmetic is covered). An overflowed (infinite) s only ever makes a skip
/// safer and is never used as a bound.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    gamma: f64,
    abs: f64,
}

impl Bounds {
    fn new(dim: usize) -> Option<Bounds> {
        let nu = (dim as f64 + 16.0) * f64::powi(2.0, -24);
        (nu < 0.01).then(|| Bounds { gamma: nu / (1.0 - nu), abs: (4.0 * dim as f64 + 32.0) * f64::powi(2.0, -126) })
    }

    /// For a group whose members' computed squared distances to its centre are all ≤ `r`: the
    /// value that a lower bound of D(g, c)² must reach for no member's computed distance to c to
    /// fall below its computed distance to g. From s(x, g) ≤ r: D(x, g) ≤ R = √((r + a)/(1 − γ)).
    /// If D(g, c) ≥ R + S with S² = ((1 + γ)R² + 2a)/(1 − γ), then D(x, c) ≥ S and
    /// s(x, c) ≥ (1 − γ)S² − a = (1 + γ)R² + a ≥ s(x, g). The factor 1 + 10⁻⁹ absorbs the f64
    /// rounding of this arithmetic. Infinite when `r` is.
    fn threshold(&self, r: f32) -> f64 {
        if !r.is_finite() {
            return f64::INFINITY;
        }
        let Bounds { gamma, abs } = *self;
        let rr = (r as f64 + abs) / (1.0 - gamma);
        let ss = ((1.0 + gamma) * rr + 2.0 * abs) / (1.0 - gamma);
        let t = (rr.sqrt() + ss.sqrt()) * (1.0 + 1e-9);
        t * t
    }

    /// Whether the computed centre–centre squared distance `q` proves D(g, c)² ≥ `threshold`.
    fn separated(&self, q: f32, threshold: f64) -> bool {
        q.is_finite() && (q as f64 - self.abs).max(0.0) / (1.0 + self.gamma) >= threshold
    }
}

/// Slot of the pseudo-group of points that no centre reaches at a finite distance (all of them
/// before the first centre); never skipped. Also "no index" in [`Summary::arg`].
const UNREACHED: u32 = 0;
const NONE: u32 = u32::MAX;

/// How group weights for [`Draw::Grouped`] are kept: none (T = 0 or the index-order draw), d²
/// itself (T = 0.5), or exp((ln d² − ln max_g)·e) relative to the group's largest distance.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Weights {
    None,
    Linear,
    Pow(f64),
}

/// A set of points' largest distance, its lowest index, and their weight sum ([`Weights`]).
#[derive(Debug, Clone, Copy)]
struct Summary {
    max: f32,
    arg: u32,
    weight: f64,
}

const EMPTY: Summary = Summary { max: f32::NEG_INFINITY, arg: NONE, weight: 0.0 };

impl Summary {
    fn of(members: &[u32], nearest: &[f32], weights: Weights) -> Summary {
        let mut s = EMPTY;
        for &x in members {
            let d = nearest[x as usize];
            if d > s.max || (d == s.max && x < s.arg) {
                (s.max, s.arg) = (d, x);
            }
        }
        s.weight = weight_sum(members, nearest, s.max, weights);
        s
    }

    fn combine(self, other: Summary, weights: Weights) -> Summary {
        if other.arg == NONE {
            return self;
        }
        if self.arg == NONE {
            return other;
        }
        let (max, arg) = if other.max > self.max || (other.max == self.max && other.arg < self.arg) {
            (other.max, other.arg)
        } else {
            (self.max, self.arg)
        };
        let weight = match weights {
            Weights::None => 0.0,
            Weights::Linear => self.weight + other.weight,
            Weights::Pow(e) => rescale(self.weight, self.max, max, e) + rescale(other.weight, other.max, max, e),
        };
        Summary { max, arg, weight }
    }
}

/// A weight sum relative to `from` (a group's largest distance) re-expressed relative to `to`.
fn rescale(weight: f64, from: f32, to: f32, e: f64) -> f64 {
    if weight == 0.0 {
        0.0
    } else {
        weight * (((from as f64).ln() - (to as f64).ln()) * e).exp()
    }
}

fn weight_sum(members: &[u32], nearest: &[f32], max: f32, weights: Weights) -> f64 {
    match weights {
        Weights::None => 0.0,
        Weights::Linear => members.iter().map(|&x| nearest[x as usize] as f64).sum(),
        Weights::Pow(e) => {
            if !(max > 0.0 && max.is_finite()) {
                return 0.0;
            }
            let log_max = (max as f64).ln();
            members.iter().map(|&x| pow_weight(nearest[x as usize], log_max, e)).sum()
        }
    }
}

fn pow_weight(d: f32, log_max: f64, e: f64) -> f64 {
    if d > 0.0 {
        (((d as f64).ln() - log_max) * e).exp()
    } else {
        0.0
    }
}

/// The points whose nearest centre is `centre` (sorted), with their summary, and the threshold
/// of [`Bounds::threshold`] for their largest distance.
#[derive(Debug)]
struct Group {
    centre: u32,
    members: Vec<u32>,
    sum: Summary,
    threshold: f64,
}

/// A run of one group's members, evaluated by one thread.
struct Unit<'m> {
    slot: u32,
    offset: usize,
    members: &'m mut [u32],
}

/// What a unit left: its first `kept` members are those whose distance did not drop.
struct UnitOut {
    slot: u32,
    offset: usize,
    kept: usize,
    sum: Summary,
}

/// Below this many values a thread costs more than it saves (as in the unpruned pass).
const PARALLEL_VALUES: usize = 1 << 16;

struct Sampler<'e, 'a> {
    emb: &'e Embeddings<'a>,
    bounds: Bounds,
    temperature: f64,
    draw: Draw,
    weights: Weights,
    policy: Policy,
    threads: usize,
    nearest: Vec<f32>,
    /// Slot of each point's nearest centre: `nearest[x]` is exactly s(x, centres[assign[x]]).
    assign: Vec<u32>,
    /// Slot → centre row; slot 0 is [`UNREACHED`].
    centres: Vec<u32>,
    /// One group per slot while pruning; empty while streaming.
    groups: Vec<Group>,
    pruning: bool,
    until_probe: usize,
    /// Pruned centres and their cost (point and centre evaluations) since the last judgement.
    window: (usize, u64),
    stats: DiversityStats,
}

/// The sampling loop of `sample_with`, with the distance updates and the picks of [`Sampler`].
fn sample(
    emb: &Embeddings,
    k: usize,
    temperature: f64,
    labeled: &[usize],
    rng: &mut impl Rng,
    draw: Draw,
    policy: Policy,
) -> Result<(Vec<usize>, DiversityStats), SelectError> {
    let n = emb.len();
    let Some(bounds) = Bounds::new(emb.dim).filter(|_| n < NONE as usize) else {
        return unpruned_with_stats(emb, k, temperature, labeled, rng);
    };
    // The same checks in the same order as `sample_with`.
    let mut is_selected = super::check_request(n, k, temperature, labeled)?;
    let mut s = Sampler::new(emb, bounds, temperature, draw, policy);
    let mut chosen = Vec::with_capacity(k);
    if k == 0 {
        return Ok((chosen, s.stats));
    }
    for i in (0..n).filter(|&i| is_selected[i]) {
        s.add_centre(i);
    }
    while chosen.len() < k {
        let next = if chosen.is_empty() && labeled.is_empty() {
            rng.random_range(0..n)
        } else {
            // Duplicates of selected points leave only zero distances: fall back to uniform.
            s.pick(rng).unwrap_or_else(|| {
                let free: Vec<usize> = (0..n).filter(|&i| !is_selected[i]).collect();
                free[rng.random_range(0..free.len())]
            })
        };
        is_selected[next] = true;
        chosen.push(next);
        if chosen.len() < k {
            s.add_centre(next);
        }
    }
    s.stats.skipped = s.stats.points * s.stats.centres - s.stats.point_evaluations;
    Ok((chosen, s.stats))
}

impl<'e, 'a> Sampler<'e, 'a> {
    fn new(emb: &'e Embeddings<'a>, bounds: Bounds, temperature: f64, draw: Draw, policy: Policy) -> Self {
        let n = emb.len();
        let exponent = 1.0 / (2.0 * temperature);
        let weights = if temperature == 0.0 || draw == Draw::IndexOrder {
            Weights::None
        } else if exponent == 1.0 {
            Weights::Linear
        } else {
            Weights::Pow(exponent)
        };
        let mut s = Sampler {
            emb,
            bounds,
            temperature,
            draw,
            weights,
            policy,
            threads: std::thread::available_parallelism().map_or(1, |t| t.get()),
            nearest: vec![f32::INFINITY; n],
            assign: vec![UNREACHED; n],
            centres: vec![NONE],
            groups: Vec::new(),
            pruning: false,
            until_probe: 1,
            window: (0, 0),
            stats: DiversityStats { points: n as u64, ..Default::default() },
        };
        if policy.start_pruned {
            s.rebuild();
            s.pruning = true;
        }
        s
    }

    /// Lowers every nearest distance with the distance to row `c`, which becomes a centre.
    fn add_centre(&mut self, c: usize) {
        let n = self.nearest.len() as u64;
        if !self.pruning && self.policy.adaptive {
            if self.until_probe == 0 {
                self.until_probe = self.policy.probe_every - 1;
                if self.probe(c) >= self.policy.start_above {
                    self.rebuild();
                    self.pruning = true;
                    self.stats.switches += 1;
                    self.window = (0, 0);
                }
            } else {
                self.until_probe -= 1;
            }
        }
        let slot = self.centres.len() as u32;
        self.centres.push(c as u32);
        self.stats.centres += 1;
        if self.pruning {
            let (points, centres) = self.pruned_pass(c, slot);
            self.stats.point_evaluations += points;
            self.stats.centre_evaluations += centres;
            self.stats.pruned_centres += 1;
            self.window.0 += 1;
            self.window.1 += points + centres;
            if self.policy.adaptive && self.window.0 >= self.policy.window {
                let skipped = 1.0 - self.window.1 as f64 / (self.window.0 as f64 * n as f64);
                if skipped < self.policy.stay_above {
                    self.groups = Vec::new();
                    self.pruning = false;
                    self.stats.switches += 1;
                    self.until_probe = self.policy.probe_every - 1;
                }
                self.window = (0, 0);
            }
        } else {
            self.streaming_pass(c, slot);
            self.stats.point_evaluations += n;
        }
        // As the unpruned sampler does; already so, since s(c, c) = 0 and c's group is read.
        debug_assert_eq!(self.nearest[c], 0.0);
        self.nearest[c] = 0.0;
    }

    /// The unpruned pass (the same distances, chunks and threads as `update_nearest`), also
    /// recording the slot of each point whose distance drops.
    fn streaming_pass(&mut self, c: usize, slot: u32) {
        let emb = self.emb;
        let centre = emb.row(c);
        let lower = |base: usize, near: &mut [f32], assign: &mut [u32]| {
            for (j, (d_slot, a_slot)) in near.iter_mut().zip(assign.iter_mut()).enumerate() {
                let d = squared_distance(emb.row(base + j), centre);
                if d < *d_slot {
                    *d_slot = d;
                    *a_slot = slot;
                }
            }
        };
        if self.threads == 1 || emb.data.len() < PARALLEL_VALUES {
            return lower(0, &mut self.nearest, &mut self.assign);
        }
        let chunk = self.nearest.len().div_ceil(self.threads);
        std::thread::scope(|s| {
            for (ci, (near, assign)) in self.nearest.chunks_mut(chunk).zip(self.assign.chunks_mut(chunk)).enumerate() {
                s.spawn(move || lower(ci * chunk, near, assign));
            }
        });
    }

    /// Squared distances from the rows `rows` to row `c`, in parallel above [`PARALLEL_VALUES`].
    fn centre_distances(&self, rows: &[u32], c: usize) -> Vec<f32> {
        let emb = self.emb;
        let centre = emb.row(c);
        let mut out = vec![0f32; rows.len()];
        let fill = |rows: &[u32], out: &mut [f32]| {
            for (o, &g) in out.iter_mut().zip(rows) {
                *o = squared_distance(emb.row(g as usize), centre);
            }
        };
        if self.threads == 1 || rows.len() * emb.dim < PARALLEL_VALUES {
            fill(rows, &mut out);
        } else {
            let chunk = rows.len().div_ceil(self.threads);
            std::thread::scope(|s| {
                for (r, o) in rows.chunks(chunk).zip(out.chunks_mut(chunk)) {
                    s.spawn(move || fill(r, o));
                }
            });
        }
        out
    }

    /// What a pruned pass would skip for centre `c`, as a fraction of N less the centre
    /// distances it costs, from one O(N) scan of the slots (no point rows read).
    fn probe(&mut self, c: usize) -> f64 {
        let slots = self.centres.len();
        let mut count = vec![0u64; slots];
        let mut max = vec![f32::NEG_INFINITY; slots];
        for (&g, &d) in self.assign.iter().zip(&self.nearest) {
            count[g as usize] += 1;
            max[g as usize] = max[g as usize].max(d);
        }
        let forced = if self.nearest[c] > 0.0 { self.assign[c] as usize } else { usize::MAX };
        let mut skipped = 0u64;
        let (mut rows, mut asked) = (Vec::new(), Vec::new());
        for g in 1..slots {
            if count[g] == 0 {
                continue;
            }
            if max[g] == 0.0 {
                skipped += count[g];
            } else if g != forced && max[g].is_finite() {
                rows.push(self.centres[g]);
                asked.push(g);
            }
        }
        let q = self.centre_distances(&rows, c);
        for (&g, &q) in asked.iter().zip(&q) {
            if self.bounds.separated(q, self.bounds.threshold(max[g])) {
                skipped += count[g];
            }
        }
        self.stats.centre_evaluations += rows.len() as u64;
        (skipped as f64 - rows.len() as f64) / self.nearest.len() as f64
    }

    /// Groups from the slots recorded by the streaming passes (members in index order).
    fn rebuild(&mut self) {
        let slots = self.centres.len();
        let mut count = vec![0usize; slots];
        for &g in &self.assign {
            count[g as usize] += 1;
        }
        let mut groups: Vec<Group> = (0..slots)
            .map(|g| Group {
                centre: self.centres[g],
                members: Vec::with_capacity(count[g]),
                sum: EMPTY,
                threshold: f64::INFINITY,
            })
            .collect();
        for (x, &g) in self.assign.iter().enumerate() {
            groups[g as usize].members.push(x as u32);
        }
        for (g, group) in groups.iter_mut().enumerate() {
            group.sum = Summary::of(&group.members, &self.nearest, self.weights);
            group.threshold = self.threshold_of(g, group.sum.max);
        }
        self.groups = groups;
    }

    fn threshold_of(&self, slot: usize, max: f32) -> f64 {
        if slot == UNREACHED as usize {
            f64::INFINITY
        } else {
            self.bounds.threshold(max)
        }
    }

    /// The pruned pass for centre `c` (slot `slot`): reads only the groups the bounds cannot
    /// rule out. Returns the point and centre distances computed.
    fn pruned_pass(&mut self, c: usize, slot: u32) -> (u64, u64) {
        // c's own group is always read (then c moves to its own group, at distance 0); the
        // bounds could not rule it out anyway, as d(g, c) ≤ r_g.
        let forced = if self.nearest[c] > 0.0 { self.assign[c] as usize } else { usize::MAX };
        let mut scan = vec![false; self.groups.len()];
        let (mut rows, mut asked) = (Vec::new(), Vec::new());
        for (g, group) in self.groups.iter().enumerate() {
            // Zero distances cannot drop: such groups (selected points, duplicates) are skipped.
            if group.members.is_empty() || !(group.sum.max > 0.0) {
                continue;
            }
            if g == forced || !group.threshold.is_finite() {
                scan[g] = true;
            } else {
                rows.push(group.centre);
                asked.push(g);
            }
        }
        let q = self.centre_distances(&rows, c);
        for (&g, &q) in asked.iter().zip(&q) {
            scan[g] = !self.bounds.separated(q, self.groups[g].threshold);
        }

        let (emb, nearest, weights, threads) = (self.emb, &self.nearest, self.weights, self.threads);
        let total: usize = self.groups.iter().zip(&scan).filter(|(_, s)| **s).map(|(g, _)| g.members.len()).sum();
        let parallel = threads > 1 && total * emb.dim >= PARALLEL_VALUES;
        let unit = if parallel { (total / (threads * 4)).max(512) } else { usize::MAX };
        let mut units = Vec::new();
        for (g, group) in self.groups.iter_mut().enumerate().filter(|(g, _)| scan[*g]) {
            for (i, members) in group.members.chunks_mut(unit).enumerate() {
                units.push(Unit { slot: g as u32, offset: i * unit, members });
            }
        }
        let centre = emb.row(c);
        let results: Vec<(Vec<UnitOut>, Vec<(u32, f32)>)> = if !parallel {
            vec![evaluate(units, emb, nearest, centre, weights)]
        } else {
            let target = total.div_ceil(threads);
            let mut batches = vec![Vec::new()];
            let mut size = 0;
            for u in units {
                if size >= target {
                    batches.push(Vec::new());
                    size = 0;
                }
                size += u.members.len();
                batches.last_mut().unwrap().push(u);
            }
            std::thread::scope(|s| {
                let handles: Vec<_> =
                    batches.into_iter().map(|b| s.spawn(move || evaluate(b, emb, nearest, centre, weights))).collect();
                handles.into_iter().map(|h| h.join().expect("distance thread panicked")).collect()
            })
        };

        // Compact each scanned group's kept members (units are in slot and offset order).
        let mut current: Option<(usize, usize, Summary)> = None;
        let outs = results.iter().flat_map(|(outs, _)| outs);
        for out in outs {
            let g = out.slot as usize;
            if current.is_some_and(|(cg, _, _)| cg != g) {
                self.finish_group(current.take().unwrap());
            }
            let (_, dst, sum) = current.get_or_insert((g, 0, EMPTY));
            self.groups[g].members.copy_within(out.offset..out.offset + out.kept, *dst);
            *dst += out.kept;
            *sum = sum.combine(out.sum, weights);
        }
        if let Some(last) = current {
            self.finish_group(last);
        }

        // The points whose distance dropped form the new centre's group.
        let mut members = Vec::with_capacity(results.iter().map(|(_, m)| m.len()).sum());
        for &(x, d) in results.iter().flat_map(|(_, moved)| moved) {
            self.nearest[x as usize] = d;
            self.assign[x as usize] = slot;
            members.push(x);
        }
        members.sort_unstable();
        let sum = Summary::of(&members, &self.nearest, weights);
        let threshold = self.threshold_of(slot as usize, sum.max);
        self.groups.push(Group { centre: c as u32, members, sum, threshold });
        (total as u64, rows.len() as u64)
    }

    fn finish_group(&mut self, (g, len, sum): (usize, usize, Summary)) {
        self.groups[g].members.truncate(len);
        self.groups[g].sum = sum;
        self.groups[g].threshold = self.threshold_of(g, sum.max);
    }

    /// The next pick, as the unpruned sampler's `pick` draws it (or by groups, see [`Draw`]).
    fn pick(&self, rng: &mut impl Rng) -> Option<usize> {
        if !self.pruning {
            return pick(&self.nearest, self.temperature, rng);
        }
        // The largest distance, lowest index on ties: the unpruned argmax.
        let mut best = EMPTY;
        for group in &self.groups {
            best = best.combine(group.sum, Weights::None);
        }
        let (max, arg) = (best.max, best.arg as usize);
        if !(max > 0.0) {
            return None;
        }
        if self.temperature == 0.0 {
            return Some(arg);
        }
        if self.draw == Draw::Grouped && max.is_finite() {
            return Some(self.draw_grouped(max, arg, rng));
        }
        Some(draw_index_order(&self.nearest, max, arg, self.temperature, rng))
    }

    /// One uniform number against the groups' weight sums, then against one group's members.
    fn draw_grouped(&self, max: f32, arg: usize, rng: &mut impl Rng) -> usize {
        let factor = |g: &Group| match self.weights {
            Weights::Pow(e) if g.sum.max > 0.0 => (((g.sum.max as f64).ln() - (max as f64).ln()) * e).exp(),
            Weights::Pow(_) => 0.0,
            _ => 1.0,
        };
        let totals: Vec<f64> = self.groups.iter().map(|g| g.sum.weight * factor(g)).collect();
        let total: f64 = totals.iter().sum();
        let mut u = rng.random::<f64>() * total;
        let mut last = None;
        for (g, &t) in totals.iter().enumerate() {
            if t > 0.0 {
                if u < t {
                    return self.draw_in_group(g, u / factor(&self.groups[g])).unwrap_or(arg);
                }
                u -= t;
                last = Some(g);
            }
        }
        // Rounding left u just past the total.
        last.and_then(|g| self.draw_in_group(g, f64::INFINITY)).unwrap_or(arg)
    }

    fn draw_in_group(&self, g: usize, mut u: f64) -> Option<usize> {
        let group = &self.groups[g];
        let log_max = (group.sum.max as f64).ln();
        let mut last_positive = None;
        for &x in &group.members {
            let d = self.nearest[x as usize];
            let w = match self.weights {
                Weights::Pow(e) => pow_weight(d, log_max, e),
                _ => d as f64,
            };
            if w > 0.0 {
                if u < w {
                    return Some(x as usize);
                }
                u -= w;
                last_positive = Some(x as usize);
            }
        }
        last_positive
    }
}

/// Evaluates units of group members against the centre row: a member whose distance drops is
/// returned as moved (with its new distance), the others are kept in place at the unit's front.
fn evaluate(
    units: Vec<Unit>,
    emb: &Embeddings,
    nearest: &[f32],
    centre: &[f32],
    weights: Weights,
) -> (Vec<UnitOut>, Vec<(u32, f32)>) {
    let mut outs = Vec::with_capacity(units.len());
    let mut moved = Vec::new();
    for unit in units {
        let mut kept = 0;
        for p in 0..unit.members.len() {
            let x = unit.members[p];
            // The unpruned pass's expression and comparison, bit for bit.
            let d = squared_distance(emb.row(x as usize), centre);
            if d < nearest[x as usize] {
                moved.push((x, d));
            } else {
                unit.members[kept] = x;
                kept += 1;
            }
        }
        let sum = Summary::of(&unit.members[..kept], nearest, weights);
        outs.push(UnitOut { slot: unit.slot, offset: unit.offset, kept, sum });
    }
    (outs, moved)
}

#[cfg(test)]
mod tests;
