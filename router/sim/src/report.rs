//! Figures over replications, with 95 % confidence intervals, as a table or JSON.
//!
//! Definitions (each computed per replication over the contacts that arrived after the
//! warm-up, then averaged over replications):
//!
//! * **service level**: answered within the threshold ÷ (answered + abandoned after the
//!   threshold), the engine's own definition (abandoned within the threshold are left out);
//! * **ASA** (average speed of answer): mean wait of answered contacts;
//! * **P(wait)**: share of contacts not offered the moment they became routable;
//! * **abandonment**: abandoned ÷ (answered + abandoned);
//! * **outsourced share**: answered by an outsourced pool ÷ answered;
//! * **mean wait**: over answered and abandoned contacts (time in queue);
//! * **estimate error**: over answered contacts that were given a wait estimate when they
//!   started waiting, the mean of (first estimate − wait), and of its absolute value;
//! * **occupancy**: capacity units in use ÷ units logged in (declared, for a provider), over
//!   time, counting wrap-up as in use.

use chrono::TimeZone;
use serde::Serialize;
use vuoro_engine::{Channel, PoolKind, PoolMode};

use crate::model::{DAY, HOUR, MINUTE, Scenario};
use crate::sim::{Plan, RepResult, Tally};
use crate::stats::{Estimate, ratio};

/// Everything a run reports.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario title.
    pub scenario: String,
    /// Replications run.
    pub replications: u32,
    /// Base seed.
    pub seed: u64,
    /// Start of the simulated period, local time.
    pub start: String,
    /// The planner's time zone.
    pub time_zone: String,
    /// Arrival period, hours.
    pub horizon_hours: f64,
    /// Uncounted start, minutes.
    pub warm_up_minutes: f64,
    /// Per channel with traffic.
    pub channels: Vec<ChannelReport>,
    /// Per traffic stream.
    pub traffic: Vec<StreamReport>,
    /// Per pool.
    pub pools: Vec<PoolReport>,
    /// Over the day.
    pub series: SeriesReport,
    /// Inputs the engine refused (a correct run has none).
    pub engine_rejections: u64,
}

/// Contact figures of a channel or a stream. Ratios are fractions (0–1), times seconds.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    /// Contacts that arrived (counted).
    pub arrivals: Option<Estimate>,
    /// Of them, answered.
    pub answered: Option<Estimate>,
    /// Service level.
    pub service_level: Option<Estimate>,
    /// Average speed of answer, seconds.
    pub asa_seconds: Option<Estimate>,
    /// Probability of waiting.
    pub prob_wait: Option<Estimate>,
    /// Abandonment.
    pub abandonment: Option<Estimate>,
    /// Share answered by outsourced pools.
    pub outsourced_share: Option<Estimate>,
    /// Share widened to outsourced pools.
    pub overflowed_share: Option<Estimate>,
    /// Mean time in queue of answered and abandoned contacts, seconds.
    pub mean_wait_seconds: Option<Estimate>,
    /// Callback requests.
    pub callbacks: Option<Estimate>,
    /// Still unanswered at the end of the drain period.
    pub unfinished: Option<Estimate>,
    /// Answered contacts that were given a wait estimate when they started waiting (the
    /// sample of the two estimate errors).
    pub answered_with_estimate: Option<Estimate>,
    /// Mean of (first estimate − actual wait) over those contacts, seconds: positive when
    /// customers were told a longer wait than they had.
    pub estimate_error_seconds: Option<Estimate>,
    /// Mean of |first estimate − actual wait| over those contacts, seconds.
    pub estimate_abs_error_seconds: Option<Estimate>,
}

/// One channel.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelReport {
    /// `voice`, `email`, `social` or `chat`.
    pub channel: String,
    /// Service-level threshold, seconds.
    pub service_level_threshold_seconds: f64,
    /// Service-level target, fraction.
    pub service_level_target: f64,
    /// Figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// Per priority class (effective priority: priority plus segment boost).
    pub classes: Vec<ClassReport>,
}

/// One priority class of a channel.
#[derive(Clone, Debug, Serialize)]
pub struct ClassReport {
    /// Effective priority.
    pub priority: u16,
    /// Contacts that arrived.
    pub arrivals: Option<Estimate>,
    /// Mean time in queue, seconds.
    pub mean_wait_seconds: Option<Estimate>,
}

/// One traffic stream.
#[derive(Clone, Debug, Serialize)]
pub struct StreamReport {
    /// Name.
    pub name: String,
    /// Channel.
    pub channel: String,
    /// Figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// One pool.
#[derive(Clone, Debug, Serialize)]
pub struct PoolReport {
    /// Name.
    pub name: String,
    /// `in_house` or `outsourced`.
    pub kind: String,
    /// `agent_level` or `capacity_level`.
    pub mode: String,
    /// Contacts it answered.
    pub answered: Option<Estimate>,
    /// Its share of all answered contacts.
    pub share_of_answered: Option<Estimate>,
    /// Occupancy.
    pub occupancy: Option<Estimate>,
    /// Mean agents logged in (capacity-level: declared contacts) after the warm-up.
    pub mean_staffed: Option<Estimate>,
}

/// Time series over the hours of the day (days of a longer horizon folded together), means
/// over replications, after the warm-up.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesReport {
    /// Bucket width, minutes.
    pub interval_minutes: f64,
    /// Start of each bucket, hours after local midnight of the start date.
    pub hours: Vec<f64>,
    /// Mean waiting contacts, per channel.
    pub queue_length: Vec<NamedSeries>,
    /// Service level of the contacts arriving in the bucket, per channel.
    pub service_level: Vec<NamedSeries>,
    /// Mean agents logged in (capacity-level: declared contacts), per pool.
    pub staffing: Vec<NamedSeries>,
    /// Occupancy, per pool.
    pub occupancy: Vec<NamedSeries>,
}

/// One line of a chart.
#[derive(Clone, Debug, Serialize)]
pub struct NamedSeries {
    /// Channel or pool.
    pub name: String,
    /// One value per bucket; `None` where undefined.
    pub values: Vec<Option<f64>>,
    /// A target to draw beside it (service level).
    pub target: Option<f64>,
}

/// Name of a channel in files and reports.
pub fn channel_name(c: Channel) -> &'static str {
    ["voice", "email", "social", "chat"][c.index()]
}

fn estimate(results: &[RepResult], f: impl Fn(&RepResult) -> Option<f64>) -> Option<Estimate> {
    Estimate::from_values(results.iter().map(f))
}

fn figures(results: &[RepResult], tally: impl Fn(&RepResult) -> &Tally) -> Figures {
    let e = |f: &dyn Fn(&Tally) -> Option<f64>| estimate(results, |r| f(tally(r)));
    Figures {
        arrivals: e(&|t| Some(t.arrivals as f64)),
        answered: e(&|t| Some(t.answered as f64)),
        service_level: e(&|t| ratio(t.answered_within as f64, (t.answered + t.abandoned_after) as f64)),
        asa_seconds: e(&|t| ratio(t.wait_answered_ms as f64 / 1000.0, t.answered as f64)),
        prob_wait: e(&|t| ratio(t.waited as f64, (t.answered + t.abandoned) as f64)),
        abandonment: e(&|t| ratio(t.abandoned as f64, (t.answered + t.abandoned) as f64)),
        outsourced_share: e(&|t| ratio(t.answered_outsourced as f64, t.answered as f64)),
        overflowed_share: e(&|t| ratio(t.overflowed as f64, t.arrivals as f64)),
        mean_wait_seconds: e(&|t| ratio(t.wait_all_ms as f64 / 1000.0, (t.answered + t.abandoned) as f64)),
        callbacks: e(&|t| Some(t.callbacks as f64)),
        unfinished: e(&|t| Some(t.unfinished as f64)),
        answered_with_estimate: e(&|t| Some(t.answered_with_estimate as f64)),
        estimate_error_seconds: e(&|t| {
            ratio(t.estimate_error_ms as f64 / 1000.0, t.answered_with_estimate as f64)
        }),
        estimate_abs_error_seconds: e(&|t| {
            ratio(t.estimate_abs_error_ms as f64 / 1000.0, t.answered_with_estimate as f64)
        }),
    }
}

impl Report {
    /// Aggregates the replications of a scenario.
    pub fn new(sc: &Scenario, plan: &Plan, results: &[RepResult]) -> Report {
        let mut channels = Vec::new();
        for c in Channel::ALL {
            if !sc.streams.iter().any(|s| s.channel == c) {
                continue;
            }
            let policy = sc.policy.channel(c);
            let classes = plan
                .classes
                .iter()
                .enumerate()
                .filter(|(_, k)| k.0 == c)
                .map(|(i, &(_, priority))| ClassReport {
                    priority,
                    arrivals: estimate(results, |r| Some(r.classes[i].arrivals as f64)),
                    mean_wait_seconds: estimate(results, |r| {
                        ratio(r.classes[i].wait_ms as f64 / 1000.0, r.classes[i].ended as f64)
                    }),
                })
                .collect();
            channels.push(ChannelReport {
                channel: channel_name(c).into(),
                service_level_threshold_seconds: policy.service_level_threshold as f64 / 1000.0,
                service_level_target: f64::from(policy.service_level_target_pct) / 100.0,
                figures: figures(results, |r| &r.channels[c.index()]),
                classes,
            });
        }
        let traffic = sc
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| StreamReport {
                name: s.name.clone(),
                channel: channel_name(s.channel).into(),
                figures: figures(results, |r| &r.streams[i]),
            })
            .collect();
        let pools = sc
            .pools
            .iter()
            .enumerate()
            .map(|(p, pool)| PoolReport {
                name: pool.name.clone(),
                kind: match pool.config.kind {
                    PoolKind::InHouse => "in_house".into(),
                    PoolKind::Outsourced(_) => "outsourced".into(),
                },
                mode: match pool.config.mode {
                    PoolMode::AgentLevel => "agent_level".into(),
                    PoolMode::CapacityLevel { .. } => "capacity_level".into(),
                },
                answered: estimate(results, |r| Some(r.pools[p].answered as f64)),
                share_of_answered: estimate(results, |r| {
                    let all: u64 = r.channels.iter().map(|t| t.answered).sum();
                    ratio(r.pools[p].answered as f64, all as f64)
                }),
                occupancy: estimate(results, |r| ratio(r.pools[p].busy_unit_ms, r.pools[p].staffed_unit_ms)),
                mean_staffed: estimate(results, |r| {
                    ratio(r.pools[p].staffed_ms, sc.horizon.saturating_sub(sc.warm_up) as f64)
                }),
            })
            .collect();
        let start = sc
            .tz
            .timestamp_millis_opt(sc.start as i64)
            .single()
            .map_or_else(String::new, |d| d.format("%Y-%m-%d %H:%M %Z").to_string());
        Report {
            scenario: sc.name.clone(),
            replications: results.len() as u32,
            seed: sc.seed,
            start,
            time_zone: sc.tz.name().into(),
            horizon_hours: sc.horizon as f64 / HOUR as f64,
            warm_up_minutes: sc.warm_up as f64 / MINUTE as f64,
            channels,
            traffic,
            pools,
            series: series(sc, results),
            engine_rejections: results.iter().map(|r| r.rejected).sum(),
        }
    }

    /// The report as a plain-text table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        s += &format!(
            "{}\n{} replication{}, seed {}, from {} for {} h{}\n",
            self.scenario,
            self.replications,
            if self.replications == 1 { "" } else { "s" },
            self.seed,
            self.start,
            trim(self.horizon_hours),
            if self.warm_up_minutes > 0.0 {
                format!(" (first {} min not counted)", trim(self.warm_up_minutes))
            } else {
                String::new()
            },
        );
        s += "Each figure: mean over replications ± half-width of its 95 % confidence interval.\n\n";

        let mut t = Table::new(&[
            "channel",
            "arrivals",
            "service level",
            "target",
            "ASA s",
            "P(wait)",
            "abandoned",
            "outsourced",
            "mean wait s",
            "estimate error s",
            "|estimate error| s",
        ]);
        for c in &self.channels {
            let f = &c.figures;
            t.row(vec![
                c.channel.clone(),
                num(f.arrivals, 1.0, 0),
                pct(f.service_level),
                format!(
                    "{} % in {} s",
                    trim(c.service_level_target * 100.0),
                    trim(c.service_level_threshold_seconds)
                ),
                num(f.asa_seconds, 1.0, 1),
                pct(f.prob_wait),
                pct(f.abandonment),
                pct(f.outsourced_share),
                num(f.mean_wait_seconds, 1.0, 1),
                num(f.estimate_error_seconds, 1.0, 1),
                num(f.estimate_abs_error_seconds, 1.0, 1),
            ]);
        }
        s += "Channels (estimate error: first wait estimate − actual wait, over answered contacts given one)\n";
        s += &t.render();

        let mut t = Table::new(&["channel", "priority", "arrivals", "mean wait s"]);
        for c in &self.channels {
            for k in &c.classes {
                t.row(vec![
                    c.channel.clone(),
                    k.priority.to_string(),
                    num(k.arrivals, 1.0, 0),
                    num(k.mean_wait_seconds, 1.0, 1),
                ]);
            }
        }
        s += "\nMean wait per priority class (priority plus segment boost; higher is served first)\n";
        s += &t.render();

        let mut t = Table::new(&[
            "traffic",
            "channel",
            "arrivals",
            "service level",
            "ASA s",
            "abandoned",
            "outsourced",
            "callbacks",
            "unfinished",
        ]);
        for st in &self.traffic {
            let f = &st.figures;
            t.row(vec![
                st.name.clone(),
                st.channel.clone(),
                num(f.arrivals, 1.0, 0),
                pct(f.service_level),
                num(f.asa_seconds, 1.0, 1),
                pct(f.abandonment),
                pct(f.outsourced_share),
                num(f.callbacks, 1.0, 0),
                num(f.unfinished, 1.0, 1),
            ]);
        }
        s += "\nTraffic streams\n";
        s += &t.render();

        let mut t = Table::new(&["pool", "kind", "mode", "answered", "share", "occupancy", "staffed (mean)"]);
        for p in &self.pools {
            t.row(vec![
                p.name.clone(),
                p.kind.replace('_', "-"),
                p.mode.replace('_', "-"),
                num(p.answered, 1.0, 0),
                pct(p.share_of_answered),
                pct(p.occupancy),
                num(p.mean_staffed, 1.0, 1),
            ]);
        }
        s += "\nPools (staffed: agents logged in; for a capacity-level pool, contacts it declares)\n";
        s += &t.render();
        if self.engine_rejections > 0 {
            s += &format!("\nwarning: the engine refused {} inputs (see stderr)\n", self.engine_rejections);
        }
        s
    }
}

fn series(sc: &Scenario, results: &[RepResult]) -> SeriesReport {
    let per_day = (DAY / sc.interval) as usize;
    let buckets = sc.buckets();
    let width = buckets.min(per_day);
    // The part of each bucket after the warm-up.
    let bucket_len = |b: usize| {
        let from = (b as u64 * sc.interval).max(sc.warm_up);
        let to = ((b as u64 + 1) * sc.interval).min(sc.horizon);
        to.saturating_sub(from) as f64
    };
    // Folds per-bucket numerators (and denominators) by time of day, summed over replications.
    let fold = |num: &dyn Fn(&RepResult, usize) -> f64, den: &dyn Fn(&RepResult, usize) -> f64| {
        let mut n = vec![0.0; width];
        let mut d = vec![0.0; width];
        for r in results {
            for b in 0..buckets {
                n[b % per_day] += num(r, b);
                d[b % per_day] += den(r, b);
            }
        }
        n.iter().zip(&d).map(|(n, d)| ratio(*n, *d)).collect::<Vec<_>>()
    };
    let mut queue_length = Vec::new();
    let mut service_level = Vec::new();
    for c in Channel::ALL {
        if !sc.streams.iter().any(|s| s.channel == c) {
            continue;
        }
        let i = c.index();
        queue_length.push(NamedSeries {
            name: channel_name(c).into(),
            values: fold(&|r, b| r.series.queue[i][b], &|_, b| bucket_len(b)),
            target: None,
        });
        service_level.push(NamedSeries {
            name: channel_name(c).into(),
            values: fold(&|r, b| r.series.answered_within[i][b] as f64, &|r, b| {
                (r.series.answered[i][b] + r.series.abandoned_after[i][b]) as f64
            }),
            target: Some(f64::from(sc.policy.channel(c).service_level_target_pct) / 100.0),
        });
    }
    let mut staffing = Vec::new();
    let mut occupancy = Vec::new();
    for (p, pool) in sc.pools.iter().enumerate() {
        staffing.push(NamedSeries {
            name: pool.name.clone(),
            values: fold(&|r, b| r.series.staffing[p][b], &|_, b| bucket_len(b)),
            target: None,
        });
        occupancy.push(NamedSeries {
            name: pool.name.clone(),
            values: fold(&|r, b| r.series.busy[p][b], &|r, b| r.series.staffed_units[p][b]),
            target: None,
        });
    }
    SeriesReport {
        interval_minutes: sc.interval as f64 / MINUTE as f64,
        hours: (0..width).map(|b| (b as u64 * sc.interval) as f64 / HOUR as f64).collect(),
        queue_length,
        service_level,
        staffing,
        occupancy,
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `mean ± half` with `decimals`, scaled.
fn num(e: Option<Estimate>, scale: f64, decimals: usize) -> String {
    match e {
        None => "–".into(),
        Some(e) => match e.half_width {
            Some(h) => format!("{:.*} ± {:.*}", decimals, e.mean * scale, decimals, h * scale),
            None => format!("{:.*}", decimals, e.mean * scale),
        },
    }
}

fn pct(e: Option<Estimate>) -> String {
    match e {
        None => "–".into(),
        Some(e) => match e.half_width {
            Some(h) => format!("{:.1} ± {:.1} %", e.mean * 100.0, h * 100.0),
            None => format!("{:.1} %", e.mean * 100.0),
        },
    }
}

/// A plain-text table: first column left-aligned, the rest right-aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row.
    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([self.header[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let pad = w - cell.chars().count();
                if i == 0 {
                    s += cell;
                    s += &" ".repeat(pad);
                } else {
                    s += "  ";
                    s += &" ".repeat(pad);
                    s += cell;
                }
            }
            s.trim_end().to_owned() + "\n"
        };
        let mut out = line(&self.header);
        for r in &self.rows {
            out += &line(r);
        }
        out
    }
}
