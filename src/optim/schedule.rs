//! Learning-rate schedules (host-side bookkeeping; the rate reaches the device in the optimiser's params).

/// lr = lr0 * gamma^(number of decays), one decay every `every` calls of `step` (GalacticFlow decays
/// every 10 batches, and every 120 once lr <= `slow_below`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExponentialLr {
    pub lr: f32,
    pub gamma: f32,
    pub every: u64,
    pub slow_every: u64,
    pub slow_below: f32,
    calls: u64,
}

impl ExponentialLr {
    pub fn new(lr: f32, gamma: f32, every: u64) -> Self {
        ExponentialLr { lr, gamma, every: every.max(1), slow_every: every.max(1), slow_below: 0.0, calls: 0 }
    }
    /// Decays every `slow_every` calls once lr <= `below`.
    pub fn with_slow_phase(mut self, below: f32, slow_every: u64) -> Self {
        self.slow_below = below;
        self.slow_every = slow_every.max(1);
        self
    }
    /// Call once per batch; returns the learning rate to use next.
    pub fn step(&mut self) -> f32 {
        self.calls += 1;
        let every = if self.lr <= self.slow_below { self.slow_every } else { self.every };
        if self.calls >= every {
            self.calls = 0;
            self.lr *= self.gamma;
        }
        self.lr
    }
}

/// Cosine annealing (torch.optim.lr_scheduler.CosineAnnealingLR, no restarts), per batch: from `lr0` at
/// step 0 to `min_lr` at step `total`, flat after. A stateless function of the step, so resuming needs
/// nothing but the step count.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CosineLr {
    pub lr0: f32,
    pub min_lr: f32,
    pub total: u64,
}

impl CosineLr {
    pub fn at(&self, step: u64) -> f32 {
        let t = step.min(self.total) as f64 / self.total.max(1) as f64;
        (f64::from(self.min_lr) + 0.5 * f64::from(self.lr0 - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos()))
            as f32
    }
}

/// torch.optim.lr_scheduler.ReduceLROnPlateau in 'min' mode with a relative threshold.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ReduceOnPlateau {
    pub lr: f32,
    pub factor: f32,
    pub patience: u32,
    pub min_lr: f32,
    pub threshold: f32,
    /// The best metric so far (f32::MAX before the first: JSON has no infinity, and checkpoints keep this).
    best: f32,
    bad: u32,
}

impl ReduceOnPlateau {
    pub fn new(lr: f32, factor: f32, patience: u32, min_lr: f32) -> Self {
        ReduceOnPlateau { lr, factor, patience, min_lr, threshold: 1e-4, best: f32::MAX, bad: 0 }
    }
    /// Call once per epoch with the monitored loss; returns the learning rate to use next.
    pub fn step(&mut self, metric: f32) -> f32 {
        if metric < self.best * (1.0 - self.threshold) {
            self.best = metric;
            self.bad = 0;
        } else {
            self.bad += 1;
            if self.bad > self.patience {
                self.lr = (self.lr * self.factor).max(self.min_lr);
                self.bad = 0;
            }
        }
        self.lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_runs_from_lr0_to_min_and_stays() {
        let c = CosineLr { lr0: 1e-3, min_lr: 1e-5, total: 100 };
        assert_eq!(c.at(0), 1e-3);
        assert!((c.at(50) - 0.5 * (1e-3 + 1e-5)).abs() < 1e-9);
        assert!((c.at(100) - 1e-5).abs() < 1e-10 && c.at(1000) == c.at(100));
        assert!((1..=100).all(|s| c.at(s) < c.at(s - 1)), "strictly decreasing to the end");
    }
}
