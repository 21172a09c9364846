//! The current state of reports, ideas, reference places and the collection fleet, folded
//! from their events.
//!
//! Applying an event is idempotent (events are recognised by id), so a write applied at
//! once on the replica that took it and again when the replay consumer reads it back
//! counts once; supports and follows are sets of pseudonyms, so concurrent supports from
//! many citizens give exact counts on every replica.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use vallee_lake::text_keys::{Opened, TextKeys};
use vallee_schemas::citizen::sealed::ERASED;
use vallee_schemas::citizen::{
    CitizenChange, CitizenEvent, DepotUpdated, DeviceRegistered, FlagReason, IdeaState,
    IdeaSubmitted, PlaceUpdated, ReportStatus, ReportSubmitted, Substatus, TruckUpdated,
};

/// A reference place as staff last published it, with its latest vacancies.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub place: PlaceUpdated,
    pub updated: DateTime<Utc>,
    pub vacancies: Option<u32>,
    pub vacancies_at: Option<DateTime<Utc>>,
}

/// One status change of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub status: ReportStatus,
    pub substatus: Option<Substatus>,
    pub status_notes: Option<String>,
    pub at: DateTime<Utc>,
    pub actor: String,
}

/// A report as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub submitted: ReportSubmitted,
    pub requested: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub status: ReportStatus,
    pub substatus: Option<Substatus>,
    pub status_notes: Option<String>,
    pub history: Vec<HistoryEntry>,
    pub followers: BTreeSet<String>,
    /// What the reporter wrote was erased (GDPR): the report stays, its texts do not.
    pub erased: bool,
    /// The bin a waste report is about (tied by the hub, untied by staff).
    pub bin: Option<String>,
    /// Its photos, in the order the reporter joined them.
    pub photos: Vec<Photo>,
}

/// A photo of a report and what staff decided of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub id: String,
    /// `None`: not looked at yet; `Some(true)`: shown publicly; `Some(false)`: hidden.
    pub visible: Option<bool>,
}

impl Report {
    /// An entry of the history that keeps the status and says what happened.
    fn note(&mut self, note: String, at: DateTime<Utc>, actor: &str) {
        self.history.push(HistoryEntry {
            status: self.status,
            substatus: self.substatus,
            status_notes: Some(note),
            at,
            actor: actor.to_string(),
        });
        self.history.sort_by_key(|h| h.at);
    }
}

/// A comment on an idea.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub id: String,
    pub body: String,
    pub author: String,
    pub at: DateTime<Utc>,
    /// Citizens who flagged it, with why.
    pub flags: BTreeMap<String, FlagReason>,
    /// A moderator's decision (hidden or not), which overrides the flags, as for ideas.
    pub moderated_hidden: Option<bool>,
}

impl Comment {
    /// Whether the public sees it: not hidden by a moderator, nor, until one decides, by
    /// `flags_to_hide` distinct flags.
    pub fn visible(&self, flags_to_hide: usize) -> bool {
        match self.moderated_hidden {
            Some(hidden) => !hidden,
            None => self.flags.len() < flags_to_hide,
        }
    }
}

/// An idea as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Idea {
    pub submitted: IdeaSubmitted,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// Supporter pseudonym → when they supported.
    pub supporters: BTreeMap<String, DateTime<Utc>>,
    pub comments: Vec<Comment>,
    pub flags: BTreeMap<String, FlagReason>,
    pub state: IdeaState,
    pub answer: Option<String>,
    /// A moderator's decision, which overrides the automatic hiding.
    pub moderated_hidden: Option<bool>,
    /// What the author wrote was erased (GDPR).
    pub erased: bool,
}

impl Idea {
    /// Whether the public sees it: not withdrawn by its author, not erased, not
    /// pre-moderated, not hidden by flags or a moderator.
    pub fn visible(&self, flags_to_hide: usize) -> bool {
        if self.erased || self.state == IdeaState::Withdrawn {
            return false;
        }
        match self.moderated_hidden {
            Some(hidden) => !hidden,
            None => self.submitted.visible && self.flags.len() < flags_to_hide,
        }
    }

    /// Supports received in the last `days` days before `now` (the TRENDING order).
    pub fn recent_supports(&self, now: DateTime<Utc>, days: i64) -> usize {
        let since = now - chrono::Duration::days(days);
        self.supporters.values().filter(|t| **t >= since).count()
    }
}

/// What changed when an event was applied (subscriptions listen to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    Report(String),
    Idea(String),
}

/// Reports and ideas, in memory.
///
/// What people wrote arrives sealed (see `vallee_schemas::citizen::sealed`) and is opened
/// here with the replica's [`TextKeys`] as it is applied; a text whose key has not arrived
/// yet stays sealed until [`CitizenView::key_arrived`] (readers show it as unavailable),
/// and an erased subject's texts are replaced, whichever of the erasure and the text is
/// read first.
#[derive(Debug, Default)]
pub struct CitizenView {
    pub reports: HashMap<String, Report>,
    pub ideas: HashMap<String, Idea>,
    /// Reference places by id (ordered: lists come out stable).
    pub places: BTreeMap<String, Place>,
    /// The collection fleet, by id: depots and trucks as staff last published them.
    pub depots: BTreeMap<String, DepotUpdated>,
    pub trucks: BTreeMap<String, TruckUpdated>,
    /// The register of field devices, by DevEUI (upper case).
    pub devices: BTreeMap<String, DeviceRegistered>,
    seen: HashSet<String>,
    /// Events that named an entity not seen yet (a follow read before its report, on
    /// another partition); applied once the entity arrives.
    parked: HashMap<String, Vec<CitizenEvent>>,
    keys: Arc<TextKeys>,
    /// Comment id → its idea's id (comments are subjects of their own).
    comment_ideas: HashMap<String, String>,
    /// Subjects erased (kept even before the subject itself is read).
    erased: HashSet<String>,
    /// Photo id → the report that first joined it.
    photo_reports: HashMap<String, String>,
}

impl CitizenView {
    /// An empty view opening texts with `keys`.
    pub fn with_keys(keys: Arc<TextKeys>) -> Self {
        CitizenView {
            keys,
            ..Default::default()
        }
    }

    /// The bins an open report of a citizen is tied to.
    pub fn reported_bins(&self) -> BTreeSet<String> {
        self.reports
            .values()
            .filter(|r| r.status == ReportStatus::Open)
            .filter_map(|r| r.bin.clone())
            .collect()
    }

    /// Photo `id` and the report it belongs to.
    pub fn photo(&self, id: &str) -> Option<(&Report, &Photo)> {
        let report = self.reports.get(self.photo_reports.get(id)?)?;
        let photo = report.photos.iter().find(|p| p.id == id)?;
        Some((report, photo))
    }

    /// The photos reports name, and those of reports whose texts were erased (which the
    /// store deletes).
    pub fn photos_named(&self) -> (HashSet<String>, HashSet<String>) {
        let (mut named, mut erased) = (HashSet::new(), HashSet::new());
        for r in self.reports.values() {
            for p in &r.photos {
                named.insert(p.id.clone());
                if r.erased {
                    erased.insert(p.id.clone());
                }
            }
        }
        (named, erased)
    }

    /// The key of `subject` arrived: its texts are opened.
    pub fn key_arrived(&mut self, subject: &str) -> Option<Changed> {
        self.open_texts(subject)
    }

    /// Opens (or erases) the texts of `subject` wherever they are: a report, an idea or
    /// a comment.
    fn open_texts(&mut self, subject: &str) -> Option<Changed> {
        let erased = self.erased.contains(subject);
        let keys = self.keys.clone();
        // Whether the text is gone.
        let open = |field: &str, text: &mut String| -> bool {
            let opened = match erased {
                true => Opened::Erased,
                false => keys.open_text(subject, field, text),
            };
            match opened {
                Opened::Text(t) => *text = t,
                Opened::Erased => {
                    *text = ERASED.to_string();
                    return true;
                }
                Opened::Unavailable => {}
            }
            false
        };
        if let Some(r) = self.reports.get_mut(subject) {
            let mut gone = false;
            for (field, text) in r.submitted.personal_texts_mut() {
                gone |= open(field, text);
            }
            if gone {
                r.erased = true;
                r.submitted.address_string = None;
                r.submitted.contact_digest = None;
            }
            return Some(Changed::Report(subject.to_string()));
        }
        if let Some(i) = self.ideas.get_mut(subject) {
            let mut gone = false;
            for (field, text) in i.submitted.personal_texts_mut() {
                gone |= open(field, text);
            }
            i.erased |= gone;
            return Some(Changed::Idea(subject.to_string()));
        }
        let idea = self.comment_ideas.get(subject)?;
        let i = self.ideas.get_mut(idea)?;
        let c = i.comments.iter_mut().find(|c| c.id == subject)?;
        open("body", &mut c.body);
        Some(Changed::Idea(idea.clone()))
    }

    /// Applies one event; `None` when it was already applied (or parked).
    pub fn apply(&mut self, event: &CitizenEvent) -> Option<Changed> {
        if !self.seen.insert(event.id.clone()) {
            return None;
        }
        let at = event.date_observed;
        let changed = match &event.change {
            CitizenChange::ReportSubmitted(r) => {
                self.reports
                    .entry(r.report_id.clone())
                    .or_insert_with(|| Report {
                        submitted: r.clone(),
                        requested: at,
                        updated: at,
                        status: ReportStatus::Open,
                        substatus: None,
                        status_notes: None,
                        history: vec![HistoryEntry {
                            status: ReportStatus::Open,
                            substatus: None,
                            status_notes: None,
                            at,
                            actor: event.actor.clone(),
                        }],
                        followers: BTreeSet::new(),
                        erased: false,
                        bin: None,
                        photos: r
                            .photos
                            .iter()
                            .map(|id| Photo {
                                id: id.clone(),
                                visible: None,
                            })
                            .collect(),
                    });
                for photo in &r.photos {
                    self.photo_reports
                        .entry(photo.clone())
                        .or_insert_with(|| r.report_id.clone());
                }
                let id = r.report_id.clone();
                self.open_texts(&id);
                self.unpark(&id);
                Changed::Report(id)
            }
            CitizenChange::IdeaSubmitted(i) => {
                self.ideas.entry(i.idea_id.clone()).or_insert_with(|| Idea {
                    submitted: i.clone(),
                    created: at,
                    updated: at,
                    supporters: BTreeMap::new(),
                    comments: Vec::new(),
                    flags: BTreeMap::new(),
                    state: IdeaState::NotAnswered,
                    answer: None,
                    moderated_hidden: None,
                    erased: false,
                });
                let id = i.idea_id.clone();
                self.open_texts(&id);
                self.unpark(&id);
                Changed::Idea(id)
            }
            CitizenChange::StaffAction { .. } => return None,
            CitizenChange::TextsErased { subjects, .. } => {
                for subject in subjects {
                    self.erased.insert(subject.clone());
                    self.open_texts(subject);
                }
                return None;
            }
            // Places are keyed by id on their topic: their events arrive in order.
            CitizenChange::PlaceUpdated(p) => {
                let place = self.places.entry(p.place_id.clone()).or_insert(Place {
                    place: p.clone(),
                    updated: at,
                    vacancies: None,
                    vacancies_at: None,
                });
                place.place = p.clone();
                place.updated = at;
                return None;
            }
            CitizenChange::PlaceRemoved { place_id } => {
                self.places.remove(place_id);
                return None;
            }
            CitizenChange::DepotUpdated(d) => {
                self.depots.insert(d.depot_id.clone(), d.clone());
                return None;
            }
            CitizenChange::DepotRemoved { depot_id } => {
                self.depots.remove(depot_id);
                return None;
            }
            CitizenChange::TruckUpdated(t) => {
                self.trucks.insert(t.truck_id.clone(), t.clone());
                return None;
            }
            CitizenChange::TruckRemoved { truck_id } => {
                self.trucks.remove(truck_id);
                return None;
            }
            CitizenChange::DeviceRegistered(d) => {
                self.devices.insert(d.dev_eui.to_uppercase(), d.clone());
                return None;
            }
            CitizenChange::DeviceRemoved { dev_eui } => {
                self.devices.remove(&dev_eui.to_uppercase());
                return None;
            }
            CitizenChange::ChildcareVacanciesUpdated {
                place_id,
                vacancies,
            } => {
                if let Some(p) = self.places.get_mut(place_id) {
                    p.vacancies = Some(*vacancies);
                    p.vacancies_at = Some(at);
                }
                return None;
            }
            change => {
                let id = change.entity_id().to_string();
                let known = self.reports.contains_key(&id) || self.ideas.contains_key(&id);
                if !known {
                    self.seen.remove(&event.id);
                    self.parked.entry(id).or_default().push(event.clone());
                    return None;
                }
                self.update(event, at);
                if self.reports.contains_key(&id) {
                    Changed::Report(id)
                } else {
                    Changed::Idea(id)
                }
            }
        };
        Some(changed)
    }

    fn unpark(&mut self, id: &str) {
        for e in self.parked.remove(id).unwrap_or_default() {
            self.apply(&e);
        }
    }

    fn update(&mut self, event: &CitizenEvent, at: DateTime<Utc>) {
        match &event.change {
            CitizenChange::ReportFollowed {
                report_id,
                follower,
            } => {
                if let Some(r) = self.reports.get_mut(report_id) {
                    r.followers.insert(follower.clone());
                }
            }
            CitizenChange::ReportStatusChanged {
                report_id,
                status,
                substatus,
                status_notes,
            } => {
                if let Some(r) = self.reports.get_mut(report_id) {
                    r.status = *status;
                    r.substatus = *substatus;
                    r.status_notes = status_notes.clone();
                    r.updated = r.updated.max(at);
                    r.history.push(HistoryEntry {
                        status: *status,
                        substatus: *substatus,
                        status_notes: status_notes.clone(),
                        at,
                        actor: event.actor.clone(),
                    });
                    r.history.sort_by_key(|h| h.at);
                }
            }
            CitizenChange::ReportLinkedToBin {
                report_id,
                bin_id,
                distance_m,
            } => {
                if let Some(r) = self.reports.get_mut(report_id) {
                    r.bin = Some(bin_id.clone());
                    r.note(
                        format!("Rattaché au conteneur {bin_id} (à {distance_m:.0} m)"),
                        at,
                        &event.actor,
                    );
                }
            }
            CitizenChange::ReportUnlinkedFromBin { report_id, bin_id } => {
                if let Some(r) = self.reports.get_mut(report_id) {
                    r.bin = None;
                    r.note(
                        format!("Rattachement au conteneur {bin_id} retiré"),
                        at,
                        &event.actor,
                    );
                }
            }
            CitizenChange::ReportPhotoModerated {
                report_id,
                photo_id,
                visible,
            } => {
                if let Some(p) = (self.reports.get_mut(report_id))
                    .and_then(|r| r.photos.iter_mut().find(|p| p.id == *photo_id))
                {
                    p.visible = Some(*visible);
                }
            }
            CitizenChange::IdeaSupported { idea_id, supporter } => {
                if let Some(i) = self.ideas.get_mut(idea_id) {
                    i.supporters.entry(supporter.clone()).or_insert(at);
                }
            }
            CitizenChange::IdeaSupportWithdrawn { idea_id, supporter } => {
                if let Some(i) = self.ideas.get_mut(idea_id) {
                    i.supporters.remove(supporter);
                }
            }
            CitizenChange::IdeaCommented {
                idea_id,
                comment_id,
                body,
                author,
            } => {
                if let Some(i) = self.ideas.get_mut(idea_id) {
                    i.comments.push(Comment {
                        id: comment_id.clone(),
                        body: body.clone(),
                        author: author.clone(),
                        at,
                        flags: BTreeMap::new(),
                        moderated_hidden: None,
                    });
                    i.comments.sort_by_key(|c| c.at);
                    self.comment_ideas
                        .insert(comment_id.clone(), idea_id.clone());
                    self.open_texts(comment_id);
                }
            }
            CitizenChange::IdeaFlagged {
                idea_id,
                flagger,
                reason,
            } => {
                if let Some(i) = self.ideas.get_mut(idea_id) {
                    i.flags.entry(flagger.clone()).or_insert(*reason);
                }
            }
            CitizenChange::IdeaAnswered {
                idea_id,
                state,
                answer,
            } => {
                if let Some(i) = self.ideas.get_mut(idea_id) {
                    i.state = *state;
                    i.answer = answer.clone();
                    i.updated = i.updated.max(at);
                }
            }
            CitizenChange::CommentModerated {
                idea_id,
                comment_id,
                hidden,
            } => {
                if let Some(c) = (self.ideas.get_mut(idea_id))
                    .and_then(|i| i.comments.iter_mut().find(|c| c.id == *comment_id))
                {
                    c.moderated_hidden = Some(*hidden);
                }
            }
            CitizenChange::CommentFlagged {
                idea_id,
                comment_id,
                flagger,
                reason,
            } => {
                if let Some(c) = (self.ideas.get_mut(idea_id))
                    .and_then(|i| i.comments.iter_mut().find(|c| c.id == *comment_id))
                {
                    c.flags.entry(flagger.clone()).or_insert(*reason);
                }
            }
            CitizenChange::IdeaModerated { idea_id, hidden } => {
                if let Some(i) = self.ideas.get_mut(idea_id) {
                    i.moderated_hidden = Some(*hidden);
                }
            }
            CitizenChange::ReportSubmitted(_)
            | CitizenChange::IdeaSubmitted(_)
            | CitizenChange::StaffAction { .. }
            | CitizenChange::TextsErased { .. }
            | CitizenChange::PlaceUpdated(_)
            | CitizenChange::PlaceRemoved { .. }
            | CitizenChange::DepotUpdated(_)
            | CitizenChange::DepotRemoved { .. }
            | CitizenChange::TruckUpdated(_)
            | CitizenChange::TruckRemoved { .. }
            | CitizenChange::DeviceRegistered(_)
            | CitizenChange::DeviceRemoved { .. }
            | CitizenChange::ChildcareVacanciesUpdated { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vallee_schemas::citizen::IdeaTheme;

    fn idea() -> CitizenEvent {
        CitizenEvent::new(
            "citizen:a",
            CitizenChange::IdeaSubmitted(IdeaSubmitted {
                idea_id: "i-1".into(),
                title: "Un tiers-lieu numérique".into(),
                body: "Dans l'ancienne gare".into(),
                theme: IdeaTheme::DigitalForAll,
                commune_code: Some("34114".into()),
                author: "a".into(),
                visible: true,
            }),
        )
    }

    fn support(who: &str) -> CitizenEvent {
        CitizenEvent::new(
            format!("citizen:{who}"),
            CitizenChange::IdeaSupported {
                idea_id: "i-1".into(),
                supporter: who.into(),
            },
        )
    }

    #[test]
    fn replaying_an_event_changes_nothing_and_supports_count_once_per_citizen() {
        let mut v = CitizenView::default();
        v.apply(&idea());
        let s = support("b");
        assert!(v.apply(&s).is_some());
        assert!(v.apply(&s).is_none());
        v.apply(&support("b"));
        v.apply(&support("c"));
        assert_eq!(v.ideas["i-1"].supporters.len(), 2);
    }

    #[test]
    fn an_event_read_before_its_entity_waits_for_it() {
        let mut v = CitizenView::default();
        assert!(v.apply(&support("b")).is_none());
        v.apply(&idea());
        assert_eq!(v.ideas["i-1"].supporters.len(), 1);
    }

    #[test]
    fn three_distinct_flags_hide_an_idea_until_a_moderator_decides() {
        let mut v = CitizenView::default();
        v.apply(&idea());
        for who in ["x", "x", "y", "z"] {
            v.apply(&CitizenEvent::new(
                "c",
                CitizenChange::IdeaFlagged {
                    idea_id: "i-1".into(),
                    flagger: who.into(),
                    reason: FlagReason::Spam,
                },
            ));
        }
        assert!(!v.ideas["i-1"].visible(3));
        v.apply(&CitizenEvent::new(
            "staff:m",
            CitizenChange::IdeaModerated {
                idea_id: "i-1".into(),
                hidden: false,
            },
        ));
        assert!(v.ideas["i-1"].visible(3));
    }

    #[test]
    fn three_distinct_flags_hide_a_comment_until_a_moderator_decides() {
        let mut v = CitizenView::default();
        v.apply(&idea());
        v.apply(&CitizenEvent::new(
            "c",
            CitizenChange::IdeaCommented {
                idea_id: "i-1".into(),
                comment_id: "c-1".into(),
                body: "Visitez mon site".into(),
                author: "w".into(),
            },
        ));
        let comment = |v: &CitizenView| v.ideas["i-1"].comments[0].clone();
        for (k, who) in ["x", "x", "y", "z"].into_iter().enumerate() {
            assert!(comment(&v).visible(3), "after {k} flags");
            v.apply(&CitizenEvent::new(
                "c",
                CitizenChange::CommentFlagged {
                    idea_id: "i-1".into(),
                    comment_id: "c-1".into(),
                    flagger: who.into(),
                    reason: FlagReason::Offensive,
                },
            ));
        }
        assert_eq!(comment(&v).flags.len(), 3, "one flag per citizen");
        assert!(!comment(&v).visible(3));
        assert!(v.ideas["i-1"].visible(3), "the idea itself stays");
        v.apply(&CitizenEvent::new(
            "staff:m",
            CitizenChange::CommentModerated {
                idea_id: "i-1".into(),
                comment_id: "c-1".into(),
                hidden: false,
            },
        ));
        assert!(comment(&v).visible(3), "a moderator's decision wins");
    }
}
