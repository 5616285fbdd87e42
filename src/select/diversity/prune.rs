//! Exact pruning for the CPU diversity sampler (issue 20): the picks of the unpruned sampler,
//! pick for pick, without reading the points whose nearest centre provably cannot change.
//!
//! Every point x keeps its nearest squared distance u(x) — bit for bit the unpruned sampler's,
//! being the same `squared_distance` of the same two rows — and the slot of the centre g that
//! attains it; points are grouped by that centre. A new centre c cannot lower u(x) when
//! d(g, c) ≥ 2·d(x, g), since then d(x, c) ≥ d(g, c) − d(x, g) ≥ d(x, g). One centre–centre
//! distance per group thus gives a cut ([`Bounds::cut`], which carries the rounding error of the
//! computed distances, so a skip proves that the unpruned pass would have left u(x) as it was):
//! members with u(x) at or below it are not read (Elkan/Hamerly-style per-point bounds), and a
//! group whose largest u is at or below it is skipped whole.
//!
//! Each group keeps its members sorted by u with their rows gathered contiguously ([`Group`]):
//! the members above a cut are a suffix, read in one stream, and the skipped ones are never
//! touched (reading rows scattered over the matrix costs several times a stream); the price is a
//! copy of the rows, at most twice the matrix, while pruning. The last member is the group's
//! largest distance (lowest index on ties), so T = 0 takes the unpruned argmax from the group
//! maxima, and T > 0 draws over the identical distances in index order ([`Draw::IndexOrder`]:
//! identical picks; at T = 0.5 from block sums of the distances with a rounding check, `draw.rs`)
//! or walks group weight sums first ([`Draw::Grouped`]: the same distribution, not the same picks
//! for a seed).
//!
//! Of the members a pass must read, most are ruled out at a fraction of a row's cost by a second
//! bound, ‖P(x − c)‖ ≤ ‖x − c‖ for the data's 8 principal directions P, whose coordinates each
//! member keeps beside its row ([`projection`], with the same proof of rounding safety; rows of
//! 32 values or more). Threads: a pass's members are shared with rayon's pool, on which the
//! whole sampling loop runs (a pass is too short to spawn threads for).
//!
//! [`Pruning::Auto`] starts unpruned (a streaming pass that also records each point's centre) and
//! every few centres probes what the bounds would skip for the incoming centre; it prunes while
//! that pays, and goes back to streaming when a window of pruned centres skipped too little.
use super::{diversity_sample_unpruned, draw_index_order, locate, pick, squared_distance, Embeddings, SelectError};
use projection::{Projection, DIRECTIONS};
use rand::Rng;
use rayon::prelude::*;

/// Whether distance passes skip the points the triangle inequality rules out.
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
    /// order. Picks are identical to the unpruned sampler's. At T = 0.5 (weights d²) it is located
    /// from block sums of the distances, renewed where they changed, and checked against the
    /// rounding of the index-order walk (see `draw.rs`), which it runs only when the check fails
    /// (about once in 10⁵ picks); at other T > 0 it walks all N weights per pick.
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
    /// The part of `skipped` inside groups that were read: members below their group's cut
    /// (the per-point bounds); the rest of `skipped` is groups skipped whole.
    pub skipped_in_read_groups: u64,
    /// The part of `skipped_in_read_groups` ruled out by the projection bound (a few principal
    /// coordinates of the point read instead of its row).
    pub skipped_by_projection: u64,
    /// Points checked with the projection bound (their coordinates read), ruled out or not.
    pub projection_checks: u64,
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
        self.fraction(self.skipped)
    }

    /// Fraction of the unpruned passes' point–centre distances skipped by the per-point bounds
    /// inside groups that were read (the part of [`Self::skipped_fraction`] they add).
    pub fn skipped_in_read_groups_fraction(&self) -> f64 {
        self.fraction(self.skipped_in_read_groups)
    }

    /// Fraction of the unpruned passes' point–centre distances ruled out by the projection bound
    /// (part of [`Self::skipped_in_read_groups_fraction`]).
    pub fn skipped_by_projection_fraction(&self) -> f64 {
        self.fraction(self.skipped_by_projection)
    }

    fn fraction(&self, count: u64) -> f64 {
        let all = self.points * self.centres;
        if all == 0 {
            0.0
        } else {
            count as f64 / all as f64
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
    rng: &mut (impl Rng + Send),
    options: DiversityOptions,
) -> Result<(Vec<usize>, DiversityStats), SelectError> {
    let policy = match options.pruning {
        Pruning::Auto => Policy::AUTO,
        Pruning::Always => Policy::ALWAYS,
        Pruning::Never => return unpruned_with_stats(emb, k, temperature, labeled, rng),
    };
    rayon::scope(|_| sample(emb, k, temperature, labeled, rng, options.draw, policy))
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

/// When to prune. `Auto`'s thresholds were measured (`bash scripts/bench.sh prune`, session 6)
/// when group members were read scattered over the matrix, which made a pruned pass cost about
/// twice a streaming one per distance; with gathered rows it costs about the same, so they are
/// conservative until measured again (switching to pruning also gathers all rows once).
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
    /// A pruned pass reading at least this many values shares them with rayon's threads.
    parallel_values: usize,
    /// Rows at least this wide get a [`Projection`] bound when pruning starts.
    project_from_dim: usize,
}

impl Policy {
    const AUTO: Policy = Policy {
        start_pruned: false,
        adaptive: true,
        window: 8,
        probe_every: 8,
        stay_above: 0.55,
        start_above: 0.65,
        parallel_values: PRUNED_PARALLEL_VALUES,
        project_from_dim: projection::MIN_DIM,
    };
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

    /// For members whose computed squared distances to their centre g are ≤ `r`: the value that
    /// a lower bound of D(g, c)² must reach for no member's computed distance to c to fall below
    /// its computed distance to g. From s(x, g) ≤ r: D(x, g) ≤ R = √((r + a)/(1 − γ)).
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

    /// The per-point bound of a new centre c for the members of g's group, from the computed
    /// s(g, c) = `q`: a distance at or below the cut cannot drop (in practice the cut is
    /// q/4·(1 − O(γ))). It is [`Self::threshold`] inverted — with √S ≤ √β·R + √δ for
    /// β = (1 + γ)/(1 − γ), δ = 2a/(1 − γ) — and then checked with [`Self::separated`], since
    /// only that check is the proof; as threshold grows with r, the check covers every smaller
    /// distance. 0 (only zero distances, which cannot drop) when `q` proves nothing.
    fn cut(&self, q: f32) -> f32 {
        if !q.is_finite() {
            return 0.0;
        }
        let Bounds { gamma, abs } = *self;
        let lower = (q as f64 - abs).max(0.0) / (1.0 + gamma);
        let beta = (1.0 + gamma) / (1.0 - gamma);
        let root = (lower.sqrt() / (1.0 + 1e-9) - (2.0 * abs / (1.0 - gamma)).sqrt()) / (1.0 + beta.sqrt());
        let mut cut = (root * root * (1.0 - gamma) - abs).max(0.0) as f32;
        // f64 rounding on either side may differ in the last bits: a few steps down settle it.
        for _ in 0..4 {
            if cut == 0.0 || self.separated(q, self.threshold(cut)) {
                return cut;
            }
            cut = (cut * (1.0 - 1e-6)).min(cut.next_down());
        }
        0.0
    }
}

/// Slot of the pseudo-group of points that no centre reaches at a finite distance (all of them
/// before the first centre); always read.
const UNREACHED: u32 = 0;
/// The centre row of [`UNREACHED`].
const NONE: u32 = u32::MAX;
/// A group slot whose member moved to a later centre.
const DEAD: u32 = u32::MAX;

/// How group weights for [`Draw::Grouped`] are kept: none (T = 0 or the index-order draw), d²
/// itself (T = 0.5), or exp((ln d² − ln max_g)·e) relative to the group's largest distance.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Weights {
    None,
    Linear,
    Pow(f64),
}

fn pow_weight(d: f32, log_max: f64, e: f64) -> f64 {
    if d > 0.0 {
        (((d as f64).ln() - log_max) * e).exp()
    } else {
        0.0
    }
}

/// The points whose nearest centre is one slot's centre ([`UNREACHED`]: none): their indices,
/// nearest squared distances and rows, the rows gathered so that a pass reads the members it must
/// in one stream. Sorted by distance ascending, ties by index descending: the members above a cut
/// are a suffix, and the last member is the group's largest distance with the lowest index among
/// equals (the unpruned argmax's tie rule). A member that moves to a later centre leaves a dead
/// slot ([`DEAD`], its distance kept so that the order stays sorted) until [`Group::tidy`]
/// compacts the group.
#[derive(Debug)]
struct Group {
    ids: Vec<u32>,
    dist: Vec<f32>,
    rows: Vec<f32>,
    /// The members' [`Projection`] coordinates, gathered like the rows (empty without one).
    coords: Vec<f32>,
    dead: usize,
    /// [`Draw::Grouped`]'s weight sum of the live members ([`Weights`]; 0 if none are kept).
    weight: f64,
}

impl Group {
    /// A group of `members` (distance, index, row, coordinates), sorted and gathered here.
    fn gather(mut members: Vec<Member>, widths: Widths, weights: Weights) -> Group {
        members.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut group = Group {
            ids: members.iter().map(|m| m.1).collect(),
            dist: members.iter().map(|m| m.0).collect(),
            rows: Vec::with_capacity(members.len() * widths.row),
            coords: Vec::with_capacity(members.len() * widths.coords),
            dead: 0,
            weight: 0.0,
        };
        for (_, _, row, coords) in members {
            group.rows.extend_from_slice(row);
            group.coords.extend_from_slice(coords);
        }
        group.weight = group.weight_sum(weights);
        group
    }

    /// Member slot `p`'s row.
    fn row(&self, p: usize, widths: Widths) -> &[f32] {
        &self.rows[p * widths.row..][..widths.row]
    }

    /// Member slot `p`'s projection coordinates (empty without a projection).
    fn coords_of(&self, p: usize, widths: Widths) -> &[f32] {
        &self.coords[p * widths.coords..][..widths.coords]
    }

    /// The largest distance and its index (the last member), if any member is left.
    fn max(&self) -> Option<(f32, u32)> {
        self.dist.last().map(|&d| (d, self.ids[self.ids.len() - 1]))
    }

    /// The live members' (index, distance), in the group's order.
    fn live(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.ids.iter().zip(&self.dist).filter(|(x, _)| **x != DEAD).map(|(&x, &d)| (x, d))
    }

    fn weight_sum(&self, weights: Weights) -> f64 {
        match (weights, self.max()) {
            (Weights::Linear, _) => self.live().map(|(_, d)| d as f64).sum(),
            (Weights::Pow(e), Some((max, _))) if max > 0.0 && max.is_finite() => {
                let log_max = (max as f64).ln();
                self.live().map(|(_, d)| pow_weight(d, log_max, e)).sum()
            }
            _ => 0.0,
        }
    }

    /// After members moved out: drops trailing dead slots (so the last member is the largest
    /// again), and copies the live members into exact-size storage once they fill less than half
    /// of it (each copy is paid for by as many removals, and the storage stays within twice the
    /// live rows), then renews the weight sum.
    fn tidy(&mut self, widths: Widths, weights: Weights) {
        while self.ids.last() == Some(&DEAD) {
            self.ids.pop();
            self.dist.pop();
            self.dead -= 1;
        }
        self.rows.truncate(self.ids.len() * widths.row);
        self.coords.truncate(self.ids.len() * widths.coords);
        let live = self.ids.len() - self.dead;
        if live * 2 < self.ids.capacity() {
            let mut members = Vec::with_capacity(live);
            for (p, (x, d)) in self.ids.iter().zip(&self.dist).enumerate().filter(|(_, (x, _))| **x != DEAD) {
                members.push((*d, *x, self.row(p, widths), self.coords_of(p, widths)));
            }
            // Already in order: the sort in `gather` finds it so.
            let compact = Group::gather(members, widths, weights);
            *self = compact;
            return;
        }
        self.weight = self.weight_sum(weights);
    }
}

/// A member to gather into a group: (distance, index, row, projection coordinates).
type Member<'r> = (f32, u32, &'r [f32], &'r [f32]);

/// Values per member in a group's rows and in its projection coordinates (0 without one).
#[derive(Debug, Clone, Copy)]
struct Widths {
    row: usize,
    coords: usize,
}

/// A run of one group's slots above its cut, evaluated by one thread.
struct Unit<'g> {
    slot: u32,
    /// Position of the run's first slot in its group.
    first: usize,
    ids: &'g mut [u32],
    dist: &'g [f32],
    rows: &'g [f32],
    coords: &'g [f32],
}

/// What one thread's units left: the members whose distance dropped (new distance, index, and
/// the slot and position where their row still lies), how many left each unit's group, and the
/// distances computed.
#[derive(Default)]
struct Moved {
    members: Vec<(f32, u32, u32, usize)>,
    left: Vec<(u32, usize)>,
    evaluated: u64,
    /// Members the projection ruled out.
    projected: u64,
}

/// Pruned passes after which the projection bound is judged (see `Sampler::projection_checked`).
const PROJECTION_TRIAL: usize = 16;

/// Below this many values a thread costs more than it saves (as in the unpruned pass).
const PARALLEL_VALUES: usize = 1 << 16;
/// The same for a pruned pass, a few hundred microseconds of work at most, handed to rayon's
/// threads (which live across passes; spawning threads per pass cost about a tenth of the CPU
/// time of the RotNet benchmark, in `clone` and stack page faults).
const PRUNED_PARALLEL_VALUES: usize = 1 << 17;

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
    /// The centres' rows in slot order (slot 0's row unused), for the centre distances.
    centre_rows: Vec<f32>,
    /// The last pass's cuts ([`Sampler::cuts`]), kept to reuse the storage.
    cuts: Vec<f32>,
    /// The nearest distances' block sums for the index-order draw at T = 0.5 ([`draw`]).
    block_sums: Option<draw::BlockSums>,
    /// Multiplies [`draw::BlockSums`]' margin (1; tests raise it to force the walk).
    margin_scale: f64,
    /// One group per slot while pruning; empty while streaming.
    groups: Vec<Group>,
    /// Each group's [`Group::max`] (−∞ when empty), kept contiguously: a pass compares every
    /// group's largest distance with its cut, and a pick takes their argmax, without touching
    /// the groups themselves.
    maxima: Vec<(f32, u32)>,
    /// The projection bound, made when pruning first starts (`None` before, or if unusable).
    projection: Option<Projection>,
    /// Whether passes check the projection bound: they stop when, over its first
    /// [`PROJECTION_TRIAL`] passes, it ruled out under a quarter of the members checked (on
    /// isotropic clusters its directions miss the distances within a cluster). Its coordinates
    /// stay gathered in the groups either way.
    projection_checked: bool,
    projection_made: bool,
    /// Pruned passes that checked the projection bound.
    projection_passes: usize,
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
            centre_rows: vec![0.0; emb.dim],
            cuts: Vec::new(),
            block_sums: (exponent == 1.0 && draw == Draw::IndexOrder).then(|| draw::BlockSums::new(n)),
            margin_scale: 1.0,
            groups: Vec::new(),
            maxima: Vec::new(),
            projection: None,
            projection_checked: true,
            projection_made: false,
            projection_passes: 0,
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
        self.centre_rows.extend_from_slice(self.emb.row(c));
        self.stats.centres += 1;
        if self.pruning {
            let (points, overhead) = self.pruned_pass(c, slot);
            self.stats.point_evaluations += points;
            self.stats.pruned_centres += 1;
            self.window.0 += 1;
            self.window.1 += points + overhead;
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
            if let Some(sums) = &mut self.block_sums {
                sums.all_changed();
            }
        }
        // As the unpruned sampler does; already so, since s(c, c) = 0 and c is always read.
        debug_assert_eq!(self.nearest[c], 0.0);
        self.nearest[c] = 0.0;
        if let Some(sums) = &mut self.block_sums {
            sums.changed(c);
        }
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

    /// Each slot's cut for the new centre `c` given each slot's largest distance: the members at
    /// or below it keep their distance ([`Bounds::cut`]). ∞ (nothing read) for empty slots and
    /// slots whose distances are all 0 (selected points, duplicates), which cannot drop and cost
    /// no centre distance; 0 for [`UNREACHED`]. A slot whose largest distance is proved safe gets
    /// that distance as its cut (the whole group is skipped; one comparison). In c's own slot the
    /// cut stays below c's distance, so c is read and moves to its own group (the bound rules
    /// this out anyway, as s(c, c) = 0). The centre distances are computed on this thread from
    /// the centres' rows kept contiguously (k·d values, in the caches). Returns the centre
    /// distances computed; the cuts are left in `self.cuts`.
    fn cuts(&mut self, c: usize, maxima: impl Iterator<Item = f32>) -> u64 {
        let (emb, dim, bounds) = (self.emb, self.emb.dim, self.bounds);
        let centre = emb.row(c);
        let mut cuts = std::mem::take(&mut self.cuts);
        cuts.clear();
        cuts.resize(self.centres.len(), f32::INFINITY);
        let mut asked = 0;
        for ((g, max), cut) in maxima.enumerate().zip(cuts.iter_mut()) {
            if !(max > 0.0) {
                continue;
            }
            if g == UNREACHED as usize {
                *cut = 0.0;
                continue;
            }
            let q = squared_distance(&self.centre_rows[g * dim..][..dim], centre);
            asked += 1;
            // q ≥ 4·max·(1 + 10⁻³) comes first: it is necessary in practice (the threshold is
            // 4·max·(1 + O(γ)), γ < 10⁻²), and the proof itself costs two square roots.
            *cut = if q as f64 >= 4.004 * max as f64 && bounds.separated(q, bounds.threshold(max)) {
                max
            } else {
                bounds.cut(q)
            };
        }
        if self.nearest[c] > 0.0 {
            let own = &mut cuts[self.assign[c] as usize];
            *own = own.min(self.nearest[c].next_down());
        }
        self.cuts = cuts;
        asked
    }

    /// What a pruned pass would skip for centre `c`, as a fraction of N less the centre
    /// distances it costs, from two O(N) scans of the slots and distances (no rows read).
    fn probe(&mut self, c: usize) -> f64 {
        let mut max = vec![f32::NEG_INFINITY; self.centres.len()];
        for (&g, &d) in self.assign.iter().zip(&self.nearest) {
            max[g as usize] = max[g as usize].max(d);
        }
        let centres = self.cuts(c, max.into_iter());
        let cuts = &self.cuts;
        let skipped = self.assign.iter().zip(&self.nearest).filter(|(&g, &d)| d <= cuts[g as usize]).count();
        self.stats.centre_evaluations += centres;
        (skipped as f64 - centres as f64) / self.nearest.len() as f64
    }

    /// Groups from the slots recorded by the streaming passes (and the projection, the first
    /// time).
    fn rebuild(&mut self) {
        let (emb, weights) = (self.emb, self.weights);
        if !self.projection_made && emb.dim >= self.policy.project_from_dim {
            self.projection = Projection::new(emb.values(), emb.dim, self.bounds.gamma, self.bounds.abs);
        }
        self.projection_made = true;
        let (widths, projection) = (self.widths(), self.projection.as_ref());
        let mut members: Vec<Vec<Member>> = (0..self.centres.len()).map(|_| Vec::new()).collect();
        for (x, (&g, &d)) in self.assign.iter().zip(&self.nearest).enumerate() {
            let coords = projection.map_or(&[][..], |p| p.of(x));
            members[g as usize].push((d, x as u32, emb.row(x), coords));
        }
        self.groups = members.into_iter().map(|m| Group::gather(m, widths, weights)).collect();
        self.maxima = self.groups.iter().map(group_max).collect();
    }

    fn widths(&self) -> Widths {
        Widths { row: self.emb.dim, coords: if self.projection.is_some() { DIRECTIONS } else { 0 } }
    }

    /// The pruned pass for centre `c` (slot `slot`): reads only the members above their group's
    /// cut, and of those only the projection coordinates of the ones it rules out. Returns the
    /// point distances computed, and the other work in point distances' worth (the centre
    /// distances and the projection checks).
    fn pruned_pass(&mut self, c: usize, slot: u32) -> (u64, u64) {
        let maxima = std::mem::take(&mut self.maxima);
        let centres = self.cuts(c, maxima.iter().map(|m| m.0));
        self.maxima = maxima;
        let cuts = std::mem::take(&mut self.cuts);
        self.stats.centre_evaluations += centres;
        let (emb, dim, threads, widths) = (self.emb, self.emb.dim, rayon::current_num_threads(), self.widths());

        // The slots above each cut: a suffix of every group whose largest distance is above it.
        let mut suffixes = Vec::new();
        let (mut total, mut live_read) = (0, 0u64);
        for (g, (group, max)) in self.groups.iter_mut().zip(&self.maxima).enumerate() {
            let cut = cuts[g];
            if max.0 > cut {
                let start = group.dist.partition_point(|&d| d <= cut);
                total += group.ids.len() - start;
                live_read += (group.ids.len() - group.dead) as u64;
                suffixes.push((g as u32, start, group));
            }
        }
        let parallel = threads > 1 && total * dim >= self.policy.parallel_values;
        let unit = if parallel { (total / (threads * 4)).max(512) } else { usize::MAX };
        let mut units = Vec::new();
        for (g, start, group) in suffixes {
            let Group { ids, dist, rows, coords, .. } = group;
            let (mut ids, mut first) = (&mut ids[start..], start);
            while !ids.is_empty() {
                let len = ids.len().min(unit);
                let (head, rest) = std::mem::take(&mut ids).split_at_mut(len);
                let span = |w: usize| first * w..(first + len) * w;
                let (rows, coords) = (&rows[span(widths.row)], &coords[span(widths.coords)]);
                units.push(Unit { slot: g, first, ids: head, dist: &dist[first..first + len], rows, coords });
                (ids, first) = (rest, first + len);
            }
        }
        let projected = self.projection.as_ref().filter(|_| self.projection_checked);
        let centre = Centre {
            row: emb.row(c),
            projected: projected.map(|p| (p, p.of(c).try_into().expect("one point's coordinates"))),
            widths,
        };
        let results: Vec<Moved> = if !parallel {
            vec![evaluate(units, centre)]
        } else {
            // Twice as many batches as threads, so that a thread that starts late takes fewer.
            let target = total.div_ceil(threads * 2);
            let mut batches = vec![Vec::new()];
            let mut size = 0;
            for u in units {
                if size >= target {
                    batches.push(Vec::new());
                    size = 0;
                }
                size += u.ids.len();
                batches.last_mut().unwrap().push(u);
            }
            batches.into_par_iter().map(|b| evaluate(b, centre)).collect()
        };

        // The points whose distance dropped form the new centre's group, their rows gathered
        // from where they lie before the groups they left are tidied.
        let (mut evaluated, mut projected, mut members) = (0, 0, Vec::new());
        for result in &results {
            evaluated += result.evaluated;
            projected += result.projected;
            for &(d, x, g, pos) in &result.members {
                let group = &self.groups[g as usize];
                members.push((d, x, group.row(pos, widths), group.coords_of(pos, widths)));
                self.nearest[x as usize] = d;
                self.assign[x as usize] = slot;
                if let Some(sums) = &mut self.block_sums {
                    sums.changed(x as usize);
                }
            }
        }
        let new_group = Group::gather(members, widths, self.weights);
        for &(g, left) in results.iter().flat_map(|r| &r.left) {
            if left > 0 {
                let group = &mut self.groups[g as usize];
                group.dead += left;
                group.tidy(widths, self.weights);
                self.maxima[g as usize] = group_max(group);
            }
        }
        self.maxima.push(group_max(&new_group));
        self.groups.push(new_group);
        self.stats.skipped_in_read_groups += live_read - evaluated;
        self.stats.skipped_by_projection += projected;
        // Every member read was checked, if this pass checked the projection at all.
        let mut checks = 0;
        if centre.projected.is_some() {
            checks = projected + evaluated;
            self.stats.projection_checks += checks;
            self.projection_passes += 1;
            if self.projection_passes == PROJECTION_TRIAL {
                self.projection_checked = self.stats.skipped_by_projection * 4 >= self.stats.projection_checks;
            }
        }
        self.cuts = cuts;
        // A projection check reads DIRECTIONS values of a point instead of its `dim`.
        (evaluated, centres + checks * DIRECTIONS as u64 / dim as u64)
    }

    /// The next pick, as the unpruned sampler's `pick` draws it (or by groups, see [`Draw`]).
    fn pick(&mut self, rng: &mut impl Rng) -> Option<usize> {
        if !self.pruning {
            return pick(&self.nearest, self.temperature, rng);
        }
        // The largest distance, lowest index on ties: the unpruned argmax.
        let best = self.maxima.iter().fold((f32::NEG_INFINITY, NONE), |best, &(d, x)| {
            if d > best.0 || (d == best.0 && x < best.1) {
                (d, x)
            } else {
                best
            }
        });
        let (max, arg) = (best.0, best.1 as usize);
        if !(max > 0.0) {
            return None;
        }
        if self.temperature == 0.0 {
            return Some(arg);
        }
        if self.draw == Draw::Grouped && max.is_finite() {
            return Some(self.draw_grouped(max, arg, rng));
        }
        if let (Some(sums), true) = (&mut self.block_sums, max.is_finite()) {
            return Some(sums.draw(&self.nearest, max, arg, rng.random::<f64>(), self.margin_scale));
        }
        Some(draw_index_order(&self.nearest, max, arg, self.temperature, rng))
    }

    /// One uniform number against the groups' weight sums, then against one group's members.
    fn draw_grouped(&self, max: f32, arg: usize, rng: &mut impl Rng) -> usize {
        let factor = |g: &Group| match (self.weights, g.max()) {
            (Weights::Pow(e), Some((m, _))) if m > 0.0 => (((m as f64).ln() - (max as f64).ln()) * e).exp(),
            (Weights::Pow(_), _) => 0.0,
            _ => 1.0,
        };
        let totals: Vec<f64> = self.groups.iter().map(|g| g.weight * factor(g)).collect();
        let total: f64 = totals.iter().sum();
        let Some((g, u)) = locate(totals.iter().copied(), rng.random::<f64>() * total) else {
            return arg;
        };
        let group = &self.groups[g];
        let log_max = group.max().map_or(0.0, |(m, _)| (m as f64).ln());
        let weight = |(x, d): (&u32, &f32)| match self.weights {
            _ if *x == DEAD => 0.0,
            Weights::Pow(e) => pow_weight(*d, log_max, e),
            _ => *d as f64,
        };
        let members = group.ids.iter().zip(&group.dist).map(weight);
        locate(members, u / factor(group)).map_or(arg, |(i, _)| group.ids[i] as usize)
    }
}

/// A group's [`Group::max`], (−∞, [`NONE`]) when it has no member left.
fn group_max(group: &Group) -> (f32, u32) {
    group.max().unwrap_or((f32::NEG_INFINITY, NONE))
}

/// What a pass compares the members with: the new centre's row, its projection coordinates
/// with the projection (if there is one), and the widths of both.
#[derive(Clone, Copy)]
struct Centre<'c> {
    row: &'c [f32],
    projected: Option<(&'c Projection, &'c [f32; DIRECTIONS])>,
    widths: Widths,
}

/// Evaluates units of group slots against the centre: a live member that the projection does
/// not rule out gets its distance computed, and if that drops it is recorded as moved (its new
/// distance, index, and where its row lies) and its slot marked [`DEAD`].
fn evaluate(units: Vec<Unit>, centre: Centre) -> Moved {
    let Widths { row: dim, coords: width } = centre.widths;
    let mut out = Moved::default();
    for unit in units {
        let mut left = 0;
        let slots = unit.ids.iter_mut().zip(unit.dist).zip(unit.rows.chunks_exact(dim));
        for (pos, ((x, &u), row)) in slots.enumerate() {
            if *x == DEAD {
                continue;
            }
            if let Some((projection, coords)) = centre.projected {
                let point = unit.coords[pos * width..][..width].try_into().expect("one point's coordinates");
                if projection.skips(point, coords, u) {
                    out.projected += 1;
                    continue;
                }
            }
            // The unpruned pass's expression and comparison, bit for bit.
            let d = squared_distance(row, centre.row);
            out.evaluated += 1;
            if d < u {
                out.members.push((d, *x, unit.slot, unit.first + pos));
                *x = DEAD;
                left += 1;
            }
        }
        out.left.push((unit.slot, left));
    }
    out
}

mod draw;
mod projection;
#[cfg(test)]
mod tests;
