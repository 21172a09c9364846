//! The command layer without HTTP nor broker: commands go to an in-memory sink, which
//! keeps what was written, in order.

use std::net::IpAddr;
use std::sync::Arc;

use vallee_schemas::citizen::{
    CitizenChange, CitizenEvent, FlagReason, IdeaState, IdeaTheme, PlaceKind, ReportStatus,
    Substatus,
};
use vallee_schemas::communes;

use super::*;
use crate::citizen::sink::MemorySink;
use crate::options::StaffMember;

const GIGNAC: &str = "34114";
const REPORTS: &str = "vallee.citizen.reports";
const IDEAS: &str = "vallee.citizen.ideas";
const AUDIT: &str = "vallee.staff.audit";
const PLACES: &str = "vallee.reference.places";

/// Commands over an in-memory sink and a contact store in a temporary folder.
struct Desk {
    commands: Commands,
    sink: Arc<MemorySink>,
    contacts: ContactStore,
    _dir: tempfile::TempDir,
}

impl Desk {
    fn new() -> Self {
        Desk::with(ApiOptions::default())
    }

    fn with(options: ApiOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(MemorySink::default());
        let contacts = ContactStore::open(dir.path()).unwrap();
        let citizens = CitizenHub::with_sink(options.clone(), sink.clone(), Some(contacts.clone()));
        let auth = Authenticator::new(b"a secret", Vec::new());
        Desk {
            commands: Commands::new(citizens, contacts.clone(), auth, &options),
            sink,
            contacts,
            _dir: dir,
        }
    }

    async fn run(&self, caller: &Caller, command: Command) -> Result<Applied> {
        self.commands.execute(caller, None, command).await
    }

    /// The topics written so far, in order.
    fn topics(&self) -> Vec<String> {
        self.sink
            .sent()
            .into_iter()
            .map(|(topic, _)| topic)
            .collect()
    }

    /// A report submitted anonymously (Gignac by default, or where `at` says).
    async fn report(&self, service: &str, at: SubmitReport) -> Report {
        let command = Command::SubmitReport(SubmitReport {
            service_code: service.into(),
            description: "Trou profond devant la mairie".into(),
            ..at
        });
        match self.run(&Caller::Anonymous, command).await.unwrap() {
            Applied::ReportSubmitted { report, .. } => report,
            other => panic!("{other:?}"),
        }
    }

    async fn idea(&self, author: &Caller, commune_code: Option<&str>) -> Idea {
        let command = Command::SubmitIdea(SubmitIdea {
            title: "Un tiers-lieu numérique".into(),
            body: "Dans l'ancienne gare".into(),
            theme: IdeaTheme::DigitalForAll,
            commune_code: commune_code.map(str::to_string),
        });
        idea_of(self.run(author, command).await.unwrap())
    }
}

fn in_gignac() -> SubmitReport {
    SubmitReport {
        lat: Some(43.6521),
        long: Some(3.5512),
        ..Default::default()
    }
}

fn in_aniane() -> SubmitReport {
    SubmitReport {
        address_string: Some("Place Etienne Sanier, Aniane".into()),
        ..Default::default()
    }
}

fn citizen(pseudonym: &str) -> Caller {
    Caller::Citizen {
        pseudonym: pseudonym.into(),
    }
}

fn staff_of(commune: Option<&str>) -> Caller {
    Caller::Staff(StaffMember {
        name: commune.map_or("ccvh".into(), |c| format!("mairie-{c}")),
        token_sha256: String::new(),
        commune: commune.map(str::to_string),
    })
}

fn idea_of(applied: Applied) -> Idea {
    match applied {
        Applied::Idea(idea) => idea,
        other => panic!("{other:?}"),
    }
}

fn report_of(applied: Applied) -> Report {
    match applied {
        Applied::Report(report) => report,
        other => panic!("{other:?}"),
    }
}

/// The refusal's kind and message.
fn refusal(result: Result<Applied>) -> (&'static str, String) {
    let e = result.expect_err("the command must be refused");
    let kind = match &e {
        CommandError::BadInput(_) => "bad input",
        CommandError::Unauthenticated(_) => "unauthenticated",
        CommandError::Forbidden(_) => "forbidden",
        CommandError::NotFound(_) => "not found",
        CommandError::RateLimited { .. } => "rate limited",
        CommandError::Failed(_) => "failed",
    };
    (kind, e.to_string())
}

fn close(report_id: &str) -> Command {
    Command::UpdateReportStatus(UpdateReportStatus {
        report_id: report_id.into(),
        status: ReportStatus::Closed,
        substatus: Some(Substatus::Fixed),
        status_notes: Some("  Rebouché ".into()),
    })
}

#[tokio::test]
async fn a_report_is_placed_in_its_commune_with_the_competent_agency_and_due_date() {
    let desk = Desk::new();
    let pothole = desk.report("pothole", in_gignac()).await;
    assert_eq!(pothole.submitted.commune_code, GIGNAC);
    assert_eq!(pothole.submitted.agency_responsible, "Mairie de Gignac");
    assert_eq!(
        pothole.submitted.expected_datetime - pothole.requested,
        chrono::Duration::days(14)
    );
    let bins = desk.report("bin-overflowing", in_aniane()).await;
    let aniane = communes::valley().by_name("Aniane").unwrap();
    assert_eq!(bins.submitted.commune_code, aniane.insee_code);
    assert_eq!(
        bins.submitted.agency_responsible,
        "Communauté de communes Vallée de l'Hérault"
    );
    assert_eq!(desk.topics(), [REPORTS, REPORTS]);
}

#[tokio::test]
async fn a_report_nearby_of_the_same_service_is_suggested_as_a_duplicate() {
    let desk = Desk::new();
    let first = desk.report("pothole", in_gignac()).await;
    let twenty_metres_north = SubmitReport {
        lat: Some(43.65228),
        long: Some(3.5512),
        service_code: "pothole".into(),
        description: "Grand trou".into(),
        ..Default::default()
    };
    let applied = desk
        .run(
            &Caller::Anonymous,
            Command::SubmitReport(twenty_metres_north.clone()),
        )
        .await
        .unwrap();
    let Applied::ReportSubmitted {
        possible_duplicates,
        ..
    } = applied
    else {
        panic!("{applied:?}");
    };
    assert_eq!(possible_duplicates, vec![first]);
    let another_service = SubmitReport {
        service_code: "graffiti".into(),
        ..twenty_metres_north
    };
    let applied = desk
        .run(&Caller::Anonymous, Command::SubmitReport(another_service))
        .await
        .unwrap();
    assert!(
        matches!(applied, Applied::ReportSubmitted { possible_duplicates, .. } if possible_duplicates.is_empty())
    );
}

#[tokio::test]
async fn an_invalid_report_is_refused_before_anything_is_written() {
    let desk = Desk::new();
    let valid = SubmitReport {
        service_code: "pothole".into(),
        description: "Trou".into(),
        contact: Some(Contact {
            email: Some("marie@example.fr".into()),
            ..Default::default()
        }),
        ..in_gignac()
    };
    let cases = [
        (
            SubmitReport {
                service_code: "no-such-service".into(),
                ..valid.clone()
            },
            "unknown serviceCode \"no-such-service\"",
        ),
        (
            SubmitReport {
                description: "  ".into(),
                ..valid.clone()
            },
            "description must not be empty",
        ),
        (
            SubmitReport {
                lat: Some(48.8566),
                long: Some(2.3522),
                ..valid.clone()
            },
            "this position is outside the valley's communes",
        ),
        (
            SubmitReport {
                long: None,
                ..valid.clone()
            },
            "give both lat and long",
        ),
        (
            SubmitReport {
                lat: None,
                long: None,
                ..valid.clone()
            },
            "give lat and long, or addressString",
        ),
        (
            SubmitReport {
                lat: None,
                long: None,
                address_string: Some("Paris".into()),
                ..valid.clone()
            },
            "the address names no commune of the valley: give lat and long",
        ),
        (
            SubmitReport {
                media_url: Some("ftp://example.fr/photo.jpg".into()),
                ..valid.clone()
            },
            "mediaUrl must be an http(s) URL",
        ),
        (
            SubmitReport {
                contact: Some(Contact {
                    email: Some("marie.example.fr".into()),
                    ..Default::default()
                }),
                ..valid.clone()
            },
            "email is not an email address",
        ),
        (
            SubmitReport {
                address_string: Some("x".repeat(501)),
                ..valid.clone()
            },
            "addressString is longer than 500 characters",
        ),
    ];
    for (report, message) in cases {
        let refused = refusal(
            desk.run(&Caller::Anonymous, Command::SubmitReport(report))
                .await,
        );
        assert_eq!(refused, ("bad input", message.to_string()));
    }
    assert!(desk.sink.sent().is_empty());
    assert!(desk.contacts.list().unwrap().is_empty(), "no contact kept");
}

#[tokio::test]
async fn a_reporters_contact_is_kept_apart_and_never_travels_in_the_event() {
    let desk = Desk::new();
    let report = desk
        .report(
            "pothole",
            SubmitReport {
                contact: Some(Contact {
                    email: Some(" marie@example.fr ".into()),
                    phone: Some("".into()),
                    ..Default::default()
                }),
                ..in_gignac()
            },
        )
        .await;
    let id = &report.submitted.report_id;
    assert!(report.submitted.has_contact);
    let kept = desk.contacts.get(id).unwrap().unwrap();
    assert_eq!(kept.email.as_deref(), Some("marie@example.fr"));
    assert_eq!(kept.phone, None, "a blank field is no field");
    let (_, event) = &desk.sink.sent()[0];
    assert!(
        !String::from_utf8(event.to_json())
            .unwrap()
            .contains("marie")
    );
}

#[tokio::test]
async fn anonymous_callers_cannot_follow_and_a_second_follow_writes_nothing() {
    let desk = Desk::new();
    let id = desk
        .report("pothole", in_gignac())
        .await
        .submitted
        .report_id;
    let follow = || Command::FollowReport {
        report_id: id.clone(),
    };
    assert_eq!(
        refusal(desk.run(&Caller::Anonymous, follow()).await),
        (
            "unauthenticated",
            "this needs a citizen token (issueCitizenToken)".into()
        )
    );
    for who in ["a", "a", "b"] {
        desk.run(&citizen(who), follow()).await.unwrap();
    }
    let report = report_of(desk.run(&citizen("a"), follow()).await.unwrap());
    assert_eq!(report.followers.len(), 2);
    assert_eq!(
        desk.topics(),
        [REPORTS, REPORTS, REPORTS],
        "one follow each"
    );
    assert_eq!(
        refusal(
            desk.run(
                &citizen("a"),
                Command::FollowReport {
                    report_id: "nope".into()
                }
            )
            .await
        ),
        ("not found", "no report nope".into())
    );
}

#[tokio::test]
async fn a_communes_staff_cannot_change_another_communes_report() {
    let desk = Desk::new();
    let aniane = desk
        .report("graffiti", in_aniane())
        .await
        .submitted
        .report_id;
    let gignac = desk
        .report("pothole", in_gignac())
        .await
        .submitted
        .report_id;
    assert_eq!(
        refusal(desk.run(&staff_of(Some(GIGNAC)), close(&aniane)).await),
        (
            "forbidden",
            "this belongs to another commune than yours".into()
        )
    );
    assert_eq!(
        refusal(desk.run(&citizen("a"), close(&gignac)).await),
        ("forbidden", "only staff may do this".into())
    );
    assert_eq!(
        refusal(desk.run(&Caller::Anonymous, close(&gignac)).await),
        ("unauthenticated", "this needs a staff token".into())
    );
    assert_eq!(desk.topics(), [REPORTS, REPORTS], "nothing audited");
    let closed = report_of(
        desk.run(&staff_of(Some(GIGNAC)), close(&gignac))
            .await
            .unwrap(),
    );
    assert_eq!(closed.status, ReportStatus::Closed);
    assert_eq!(closed.status_notes.as_deref(), Some("Rebouché"));
    desk.run(&staff_of(None), close(&aniane)).await.unwrap();
}

#[tokio::test]
async fn a_duplicate_is_closed_into_the_first_report_whose_followers_it_joins() {
    let desk = Desk::new();
    let first = desk
        .report("pothole", in_gignac())
        .await
        .submitted
        .report_id;
    let second = desk
        .report("pothole", in_gignac())
        .await
        .submitted
        .report_id;
    let elsewhere = desk
        .report("graffiti", in_aniane())
        .await
        .submitted
        .report_id;
    let follow = |id: &str| Command::FollowReport {
        report_id: id.to_string(),
    };
    desk.run(&citizen("a"), follow(&second)).await.unwrap();
    desk.run(&citizen("b"), follow(&second)).await.unwrap();
    desk.run(&citizen("b"), follow(&first)).await.unwrap();
    let merge = |id: &str, into: &str| Command::MergeReport {
        report_id: id.to_string(),
        into: into.to_string(),
    };
    let gignac = staff_of(Some(GIGNAC));
    assert_eq!(
        refusal(desk.run(&gignac, merge(&second, &second)).await).0,
        "bad input"
    );
    assert_eq!(
        refusal(desk.run(&gignac, merge(&second, &elsewhere)).await).0,
        "forbidden",
        "into another commune's report"
    );
    assert_eq!(
        refusal(desk.run(&citizen("a"), merge(&second, &first)).await).0,
        "forbidden"
    );
    let into = report_of(desk.run(&gignac, merge(&second, &first)).await.unwrap());
    assert_eq!(into.submitted.report_id, first);
    assert_eq!(
        into.followers
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["a", "b"],
        "a joins; b followed both and counts once"
    );
    let closed = report_of(desk.run(&citizen("a"), follow(&second)).await.unwrap());
    assert_eq!(closed.status, ReportStatus::Closed);
    assert_eq!(closed.substatus, Some(Substatus::Duplicate));
    assert!(closed.status_notes.unwrap().contains(&first));
    assert_eq!(
        refusal(desk.run(&gignac, merge(&second, &first)).await),
        ("bad input", "this report is already closed".into())
    );
}

#[tokio::test]
async fn a_staff_action_is_audited_before_its_event() {
    let desk = Desk::new();
    let id = desk
        .report("pothole", in_gignac())
        .await
        .submitted
        .report_id;
    desk.run(&staff_of(None), close(&id)).await.unwrap();
    let sent = desk.sink.sent();
    assert_eq!(desk.topics(), [REPORTS, AUDIT, REPORTS]);
    assert_eq!(
        sent[1].1.change,
        CitizenChange::StaffAction {
            action: "updateReportStatus".into(),
            target: id.clone(),
            scope: "intercommunality".into(),
            detail: Some("Closed/Some(Fixed)".into()),
        }
    );
    assert_eq!(sent[1].1.actor, "staff:ccvh");
    assert_eq!(sent[2].1.actor, "staff:ccvh");
    assert!(matches!(
        &sent[2].1.change,
        CitizenChange::ReportStatusChanged { report_id, .. } if *report_id == id
    ));
}

#[tokio::test]
async fn every_read_of_a_contact_is_audited_and_only_within_scope() {
    let desk = Desk::new();
    let with_contact = SubmitReport {
        contact: Some(Contact {
            email: Some("marie@example.fr".into()),
            ..Default::default()
        }),
        ..in_aniane()
    };
    let id = desk
        .report("graffiti", with_contact)
        .await
        .submitted
        .report_id;
    // A citizen, and the staff of another commune, read nothing and leave no audit.
    for (caller, refused) in [
        (citizen("p"), "forbidden"),
        (staff_of(Some(GIGNAC)), "forbidden"),
    ] {
        let err = desk.commands.read_contact(&caller, &id).await.unwrap_err();
        assert_eq!(refusal(Err(err)).0, refused);
    }
    assert_eq!(desk.topics(), [REPORTS]);
    // The intercommunality reads it, twice: two audit records naming the report.
    for _ in 0..2 {
        let contact = desk.commands.read_contact(&staff_of(None), &id).await;
        assert_eq!(
            contact.unwrap().unwrap().email.as_deref(),
            Some("marie@example.fr")
        );
    }
    let sent = desk.sink.sent();
    assert_eq!(desk.topics(), [REPORTS, AUDIT, AUDIT]);
    assert_eq!(
        sent[1].1.change,
        CitizenChange::StaffAction {
            action: "readContact".into(),
            target: id.clone(),
            scope: "intercommunality".into(),
            detail: None,
        }
    );
}

#[tokio::test]
async fn an_action_whose_event_fails_is_still_audited_as_attempted() {
    let desk = Desk::new();
    let id = desk
        .report("pothole", in_gignac())
        .await
        .submitted
        .report_id;
    desk.sink.refuse(REPORTS);
    let (kind, _) = refusal(desk.run(&staff_of(None), close(&id)).await);
    assert_eq!(kind, "failed");
    assert_eq!(desk.topics(), [REPORTS, AUDIT]);
    let view = desk.commands.report(&id).unwrap();
    assert_eq!(view.status, ReportStatus::Open, "nothing applied");
}

#[tokio::test]
async fn only_staff_answer_ideas_and_only_the_author_withdraws_one() {
    let desk = Desk::new();
    let submit = Command::SubmitIdea(SubmitIdea {
        title: "x".into(),
        body: "y".into(),
        theme: IdeaTheme::WineSector,
        commune_code: None,
    });
    assert_eq!(
        refusal(desk.run(&Caller::Anonymous, submit).await).0,
        "unauthenticated"
    );
    let id = desk
        .idea(&citizen("author"), Some(GIGNAC))
        .await
        .submitted
        .idea_id;
    let answer = || Command::AnswerIdea {
        idea_id: id.clone(),
        state: IdeaState::Accepted,
        answer: Some("Inscrit au budget".into()),
    };
    assert_eq!(
        refusal(desk.run(&citizen("author"), answer()).await),
        ("forbidden", "only staff may do this".into())
    );
    let withdraw = || Command::WithdrawIdea {
        idea_id: id.clone(),
    };
    assert_eq!(
        refusal(desk.run(&citizen("other"), withdraw()).await),
        ("forbidden", "only the author may withdraw an idea".into())
    );
    let answered = idea_of(desk.run(&staff_of(Some(GIGNAC)), answer()).await.unwrap());
    assert_eq!(answered.state, IdeaState::Accepted);
    assert_eq!(desk.topics(), [IDEAS, AUDIT, IDEAS]);
    let withdrawn = idea_of(desk.run(&citizen("author"), withdraw()).await.unwrap());
    assert_eq!(withdrawn.state, IdeaState::Withdrawn);
    assert_eq!(
        refusal(
            desk.run(
                &citizen("other"),
                Command::SupportIdea {
                    idea_id: id.clone()
                }
            )
            .await
        ),
        ("bad input", "this idea was withdrawn".into())
    );
}

#[tokio::test]
async fn an_idea_of_the_whole_valley_is_answered_by_the_intercommunality_only() {
    let desk = Desk::new();
    let id = desk.idea(&citizen("a"), None).await.submitted.idea_id;
    let moderate = || Command::ModerateIdea {
        idea_id: id.clone(),
        hidden: true,
    };
    assert_eq!(
        refusal(desk.run(&staff_of(Some(GIGNAC)), moderate()).await).0,
        "forbidden"
    );
    desk.run(&staff_of(None), moderate()).await.unwrap();
    let sent = desk.sink.sent();
    assert_eq!(desk.topics(), [IDEAS, AUDIT, IDEAS]);
    assert!(matches!(
        &sent[1].1.change,
        CitizenChange::StaffAction { detail: Some(d), .. } if d == "hidden=true"
    ));
}

#[tokio::test]
async fn a_second_support_or_flag_writes_nothing_and_counts_once() {
    let desk = Desk::with(ApiOptions {
        flags_to_hide: 2,
        ..Default::default()
    });
    let id = desk
        .idea(&citizen("a"), Some(GIGNAC))
        .await
        .submitted
        .idea_id;
    let support = || Command::SupportIdea {
        idea_id: id.clone(),
    };
    for _ in 0..2 {
        let idea = idea_of(desk.run(&citizen("b"), support()).await.unwrap());
        assert_eq!(idea.supporters.len(), 1);
    }
    assert_eq!(desk.topics(), [IDEAS, IDEAS]);
    let withdraw = || Command::WithdrawSupport {
        idea_id: id.clone(),
    };
    for _ in 0..2 {
        let idea = idea_of(desk.run(&citizen("b"), withdraw()).await.unwrap());
        assert!(idea.supporters.is_empty());
    }
    assert_eq!(desk.topics().len(), 3, "one withdrawal written");

    // Two distinct flags hide it: citizens no longer find it, staff still do.
    let flag = || Command::FlagIdea {
        idea_id: id.clone(),
        reason: FlagReason::Spam,
    };
    for who in ["x", "x", "y"] {
        desk.run(&citizen(who), flag()).await.unwrap();
    }
    assert_eq!(desk.topics().len(), 5, "two flags written");
    assert_eq!(
        refusal(desk.run(&citizen("b"), support()).await),
        ("not found", format!("no idea {id}"))
    );
    let comment = Command::CommentIdea {
        idea_id: id.clone(),
        body: "Bravo".into(),
    };
    assert_eq!(
        refusal(desk.run(&citizen("b"), comment).await).0,
        "not found"
    );
    desk.run(
        &staff_of(Some(GIGNAC)),
        Command::ModerateIdea {
            idea_id: id.clone(),
            hidden: false,
        },
    )
    .await
    .unwrap();
    desk.run(&citizen("b"), support()).await.unwrap();
}

#[tokio::test]
async fn a_comment_is_answered_with_its_idea() {
    let desk = Desk::new();
    let id = desk.idea(&citizen("a"), None).await.submitted.idea_id;
    let comment = |body: &str| Command::CommentIdea {
        idea_id: id.clone(),
        body: body.into(),
    };
    assert_eq!(
        refusal(desk.run(&citizen("b"), comment(" ")).await),
        ("bad input", "body must not be empty".into())
    );
    let applied = desk.run(&citizen("b"), comment(" Bravo ")).await.unwrap();
    let Applied::IdeaCommented { idea, comment } = applied else {
        panic!("{applied:?}");
    };
    assert_eq!(comment.body, "Bravo");
    assert_eq!(comment.author, "b");
    assert_eq!(idea.comments, vec![comment]);
}

#[tokio::test]
async fn reporter_data_is_exported_and_erased_within_scope_and_audited_without_the_email() {
    let desk = Desk::new();
    let email = "marie@example.fr";
    let with_contact = |at: SubmitReport| SubmitReport {
        contact: Some(Contact {
            email: Some(email.into()),
            ..Default::default()
        }),
        ..at
    };
    let gignac = desk
        .report("pothole", with_contact(in_gignac()))
        .await
        .submitted
        .report_id;
    let aniane = desk
        .report("graffiti", with_contact(in_aniane()))
        .await
        .submitted
        .report_id;
    let by_email = || ReporterOf {
        email: Some(email.into()),
        ..Default::default()
    };
    assert_eq!(
        refusal(
            desk.run(
                &staff_of(None),
                Command::ExportReporterData(ReporterOf::default())
            )
            .await
        ),
        ("bad input", "give reportId or email".into())
    );
    assert_eq!(
        refusal(
            desk.run(
                &staff_of(Some(GIGNAC)),
                Command::ExportReporterData(by_email())
            )
            .await
        )
        .0,
        "forbidden",
        "one of the reports is in Aniane"
    );
    let unknown = ReporterOf {
        report_id: Some("not-in-the-view".into()),
        ..Default::default()
    };
    assert_eq!(
        refusal(
            desk.run(&staff_of(Some(GIGNAC)), Command::EraseReporterData(unknown))
                .await
        ),
        (
            "forbidden",
            "only the intercommunality's staff may act on unknown reports".into()
        )
    );
    assert_eq!(
        desk.topics(),
        [REPORTS, REPORTS],
        "refusals are not audited"
    );

    let Applied::ReporterData(records) = desk
        .run(&staff_of(None), Command::ExportReporterData(by_email()))
        .await
        .unwrap()
    else {
        panic!("not reporter data");
    };
    let mut ids: Vec<&str> = records.iter().map(|r| r.report_id.as_str()).collect();
    ids.sort();
    let mut expected = vec![gignac.as_str(), aniane.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(records.iter().all(|r| r.report.is_some()));
    let erased = desk
        .run(&staff_of(None), Command::EraseReporterData(by_email()))
        .await
        .unwrap();
    assert!(matches!(erased, Applied::ReporterDataErased(ids) if ids.len() == 2));
    assert!(desk.contacts.list().unwrap().is_empty());
    let audits: Vec<CitizenEvent> = desk
        .sink
        .sent()
        .into_iter()
        .filter(|(topic, _)| topic == AUDIT)
        .map(|(_, e)| e)
        .collect();
    assert_eq!(audits.len(), 2);
    for audit in audits {
        assert!(!String::from_utf8(audit.to_json()).unwrap().contains(email));
    }
}

/// Bins at fixed places (the lake's latest readings, in production).
struct FixedBins(Vec<(&'static str, f64, f64)>);

impl BinLocator for FixedBins {
    fn nearest(
        &self,
        lat: f64,
        long: f64,
        radius_m: f64,
    ) -> futures::future::BoxFuture<'_, std::result::Result<Option<(String, f64)>, String>> {
        use vallee_schemas::geo::GeoPoint;
        let here = GeoPoint { lat, lon: long };
        let found = self
            .0
            .iter()
            .map(|(id, lat, lon)| {
                let d = here.distance_m(&GeoPoint {
                    lat: *lat,
                    lon: *lon,
                });
                (id.to_string(), d)
            })
            .filter(|(_, d)| *d <= radius_m)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        Box::pin(async move { Ok(found) })
    }
}

#[tokio::test]
async fn a_waste_report_is_tied_to_the_nearest_bin_within_30_m_staff_untie_a_wrong_one() {
    let mut desk = Desk::new();
    desk.commands = desk.commands.with_bins(Arc::new(FixedBins(vec![
        // About 11 m and 22 m north of the report, and one 110 m away.
        ("bin-near", 43.6522, 3.5512),
        ("bin-next", 43.6523, 3.5512),
        ("bin-far", 43.6531, 3.5512),
    ])));
    let submit = |service: &str, lat: f64| {
        Command::SubmitReport(SubmitReport {
            service_code: service.into(),
            description: "Conteneur qui déborde".into(),
            lat: Some(lat),
            long: Some(3.5512),
            ..Default::default()
        })
    };
    let submitted = |applied: Applied| match applied {
        Applied::ReportSubmitted { report, .. } => report,
        other => panic!("{other:?}"),
    };
    let tied = submitted(
        desk.run(&Caller::Anonymous, submit("bin-overflowing", 43.6521))
            .await
            .unwrap(),
    );
    let id = tied.submitted.report_id.clone();
    assert_eq!(tied.bin.as_deref(), Some("bin-near"));
    let note = tied.history.last().unwrap();
    assert_eq!(note.actor, "hub");
    assert_eq!(
        note.status_notes.as_deref(),
        Some("Rattaché au conteneur bin-near (à 11 m)")
    );
    let (_, link) = desk.sink.sent().last().cloned().unwrap();
    assert!(matches!(
        link.change,
        CitizenChange::ReportLinkedToBin { .. }
    ));
    // Another service, or no bin within 30 m: nothing tied.
    let pothole = desk.report("pothole", in_gignac()).await;
    assert_eq!(pothole.bin, None);
    let alone = submitted(
        desk.run(&Caller::Anonymous, submit("bin-overflowing", 43.6500))
            .await
            .unwrap(),
    );
    assert_eq!(alone.bin, None);
    let reported = || desk.commands.citizens.view.read().unwrap().reported_bins();
    assert_eq!(reported(), ["bin-near".to_string()].into());

    // Only staff of the report's commune untie it; the history says so; twice is refused.
    let unlink = || Command::UnlinkReportFromBin {
        report_id: id.clone(),
    };
    assert_eq!(
        refusal(desk.run(&staff_of(Some("34004")), unlink()).await).0,
        "forbidden"
    );
    assert_eq!(
        refusal(desk.run(&citizen("a"), unlink()).await).0,
        "forbidden"
    );
    let untied = report_of(desk.run(&staff_of(Some(GIGNAC)), unlink()).await.unwrap());
    assert_eq!(untied.bin, None);
    assert_eq!(
        untied.history.last().unwrap().status_notes.as_deref(),
        Some("Rattachement au conteneur bin-near retiré")
    );
    assert!(reported().is_empty());
    assert_eq!(&desk.topics()[desk.topics().len() - 2..], [AUDIT, REPORTS]);
    assert_eq!(
        refusal(desk.run(&staff_of(None), unlink()).await),
        ("bad input", "this report is tied to no bin".into())
    );
}

#[tokio::test]
async fn the_hub_closes_an_emptied_bins_report_once_whichever_replica_sees_it_first() {
    let desk = Desk::new();
    let id = desk
        .report("bin-overflowing", in_gignac())
        .await
        .submitted
        .report_id;
    let emptied: chrono::DateTime<chrono::Utc> = "2026-12-05T07:42:00Z".parse().unwrap();
    desk.commands
        .close_emptied_bin_report(&id, "bin-near", emptied)
        .await
        .unwrap();
    // Another replica found the same emptying: the same event, applied once.
    let (_, closing) = desk.sink.sent().last().cloned().unwrap();
    desk.commands
        .close_emptied_bin_report(&id, "bin-near", emptied)
        .await
        .unwrap();
    desk.commands.citizens.apply(&closing);
    let closed = desk.commands.report(&id).unwrap();
    assert_eq!(
        (closed.status, closed.substatus),
        (ReportStatus::Closed, Some(Substatus::Fixed))
    );
    assert_eq!(closed.history.len(), 2, "opened, then closed once");
    assert_eq!(
        closed.status_notes.as_deref(),
        Some("Conteneur bin-near vidé le 05/12/2026 à 07:42 (UTC), constaté par son capteur")
    );
}

/// The key record a replica hands the others for `subject`, as the topic carries it.
fn key_record(desk: &Desk, subject: &str) -> Vec<u8> {
    let (_, key) = desk
        .sink
        .keys()
        .into_iter()
        .find(|(s, _)| s == subject)
        .expect("a key was sent");
    serde_json::to_vec(&crate::citizen::KeyRecord {
        subject: subject.into(),
        key,
    })
    .unwrap()
}

#[tokio::test]
async fn what_people_write_travels_sealed_and_an_erasure_reaches_every_replica() {
    use vallee_schemas::citizen::sealed::{self, ERASED, UNAVAILABLE};
    let desk = Desk::new();
    let email = "marie@example.fr";
    let by_email = || ReporterOf {
        email: Some(email.into()),
        ..Default::default()
    };
    let report = desk
        .report(
            "pothole",
            SubmitReport {
                address_string: Some("12 rue du Pont, Gignac".into()),
                contact: Some(Contact {
                    email: Some(email.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await;
    let id = report.submitted.report_id.clone();
    assert_eq!(
        report.submitted.description,
        "Trou profond devant la mairie"
    );
    assert_eq!(
        report.submitted.address_string.as_deref(),
        Some("12 rue du Pont, Gignac")
    );
    // On the wire: the texts sealed, the key sent once, wrapped.
    let (_, event) = desk.sink.sent()[0].clone();
    let json = String::from_utf8(event.to_json()).unwrap();
    for clear in ["Trou profond", "rue du Pont", "marie", "example"] {
        assert!(!json.contains(clear), "{clear} in {json}");
    }
    let CitizenChange::ReportSubmitted(sent) = &event.change else {
        panic!("{event:?}");
    };
    assert!(sealed::is_sealed(&sent.description));
    assert!(
        sent.contact_digest
            .as_deref()
            .is_some_and(sealed::is_sealed)
    );
    assert_eq!(desk.sink.keys().len(), 1);
    let record = key_record(&desk, &id);

    // Another replica (same secret, its own private store) reads the event before the key:
    // the text waits, unreadable, and opens when the key arrives.
    let replica = Desk::new();
    let hub = &replica.commands.citizens;
    hub.apply(&event);
    let description = || {
        let view = hub.view.read().unwrap();
        crate::citizen::reads::text(true, &view.reports[&id].submitted.description).into_owned()
    };
    assert_eq!(description(), UNAVAILABLE);
    hub.key_record(Some(&record)).unwrap();
    assert_eq!(description(), "Trou profond devant la mairie");
    // A key record forged without the replicas' secret is refused.
    let forged = serde_json::to_vec(&crate::citizen::KeyRecord {
        subject: "other".into(),
        key: sealed::TextKey::generate().wrap(&sealed::TextKey::generate(), "other"),
    })
    .unwrap();
    assert!(hub.key_record(Some(&forged)).is_err());
    assert!(hub.texts().get("other").is_none());

    // That replica holds no contact, yet finds the report by e-mail (the sealed digest)
    // and erases it for every replica.
    let erased = replica
        .run(&staff_of(None), Command::EraseReporterData(by_email()))
        .await
        .unwrap();
    assert!(matches!(&erased, Applied::ReporterDataErased(ids) if *ids == [id.clone()]));
    assert_eq!(description(), ERASED);
    let (topic, erasure) = replica.sink.sent().last().cloned().unwrap();
    assert_eq!(topic, REPORTS);
    assert!(
        matches!(&erasure.change, CitizenChange::TextsErased { subjects, .. } if *subjects == [id.clone()])
    );

    // The replica that took the report reads the erasure: key and contact gone, texts
    // replaced; the key's record replayed later brings nothing back.
    desk.commands.citizens.apply(&erasure);
    assert!(desk.contacts.get(&id).unwrap().is_none());
    assert!(desk.commands.citizens.texts().get(&id).is_none());
    desk.commands.citizens.key_record(Some(&record)).unwrap();
    assert!(desk.commands.citizens.texts().get(&id).is_none());
    let read = desk.commands.report(&id).unwrap();
    assert!(read.erased);
    assert_eq!(read.submitted.description, ERASED);
    assert_eq!(read.submitted.address_string, None);
    assert_eq!(read.submitted.contact_digest, None);
    // A copy of the event (the topic's, the lake's) no longer opens anywhere.
    assert!(
        (desk.commands.citizens.texts()).open_text(&id, "description", &sent.description)
            != vallee_lake::text_keys::Opened::Text("Trou profond devant la mairie".into())
    );
    // Nothing left to find by that e-mail.
    let again = desk
        .run(&staff_of(None), Command::EraseReporterData(by_email()))
        .await
        .unwrap();
    assert!(matches!(again, Applied::ReporterDataErased(ids) if ids.is_empty()));
}

#[tokio::test]
async fn a_citizen_erases_what_they_wrote_and_their_ideas_leave_the_public_view() {
    use vallee_schemas::citizen::sealed::ERASED;
    let desk = Desk::new();
    let (me, other) = (citizen("moi"), citizen("autre"));
    let mine = desk.idea(&me, Some(GIGNAC)).await.submitted.idea_id;
    let theirs = desk.idea(&other, Some(GIGNAC)).await.submitted.idea_id;
    let withdrawn = desk.idea(&other, None).await.submitted.idea_id;
    let comment = |idea: &str, body: &str| Command::CommentIdea {
        idea_id: idea.into(),
        body: body.into(),
    };
    let comment_id = |applied: Applied| match applied {
        Applied::IdeaCommented { comment, .. } => comment.id,
        other => panic!("{other:?}"),
    };
    let my_comment = comment_id(desk.run(&me, comment(&theirs, "Oui !")).await.unwrap());
    let their_comment = comment_id(desk.run(&other, comment(&mine, "Bravo")).await.unwrap());
    let my_report = match desk
        .run(
            &me,
            Command::SubmitReport(SubmitReport {
                service_code: "pothole".into(),
                description: "Nid-de-poule".into(),
                ..in_gignac()
            }),
        )
        .await
        .unwrap()
    {
        Applied::ReportSubmitted { report, .. } => report.submitted.report_id,
        other => panic!("{other:?}"),
    };
    desk.run(
        &other,
        Command::WithdrawIdea {
            idea_id: withdrawn.clone(),
        },
    )
    .await
    .unwrap();
    let visible = |id: &str| desk.commands.idea(id, desk.commands.public()).is_ok();
    assert!(visible(&mine) && visible(&theirs));
    assert!(
        !visible(&withdrawn),
        "a withdrawn idea leaves the public's view"
    );

    assert_eq!(
        refusal(
            desk.run(&Caller::Anonymous, Command::EraseMyContributions)
                .await
        )
        .0,
        "unauthenticated"
    );
    let applied = desk.run(&me, Command::EraseMyContributions).await.unwrap();
    let Applied::ContributionsErased {
        reports,
        ideas,
        comments,
    } = applied
    else {
        panic!("{applied:?}");
    };
    assert_eq!(
        (reports, ideas, comments),
        (
            vec![my_report.clone()],
            vec![mine.clone()],
            vec![my_comment.clone()]
        )
    );
    let idea = desk.commands.idea(&mine, SeenBy::Staff).unwrap();
    assert!(idea.erased && !visible(&mine));
    assert_eq!(
        (idea.submitted.title.as_str(), idea.submitted.body.as_str()),
        (ERASED, ERASED)
    );
    assert_eq!(idea.comments[0].id, their_comment);
    assert_eq!(idea.comments[0].body, "Bravo", "another's comment stays");
    let theirs_now = desk.commands.idea(&theirs, SeenBy::Staff).unwrap();
    assert!(visible(&theirs));
    assert_eq!(theirs_now.comments[0].id, my_comment);
    assert_eq!(theirs_now.comments[0].body, ERASED);
    assert_eq!(
        desk.commands
            .report(&my_report)
            .unwrap()
            .submitted
            .description,
        ERASED
    );
    // Nothing left: a second request erases nothing and writes nothing.
    let written = desk.sink.sent().len();
    let again = desk.run(&me, Command::EraseMyContributions).await.unwrap();
    assert!(
        matches!(again, Applied::ContributionsErased { reports, ideas, comments }
        if reports.is_empty() && ideas.is_empty() && comments.is_empty())
    );
    assert_eq!(desk.sink.sent().len(), written);
}

fn childcare(place_id: Option<String>, commune_code: &str) -> UpdatePlace {
    UpdatePlace {
        place_id,
        kind: PlaceKind::Childcare,
        name: "Crèche Les Lutins".into(),
        commune_code: commune_code.into(),
        address: None,
        lat: None,
        long: None,
        opening_hours: Some("Mo-Fr 07:30-18:30".into()),
        contact: None,
        website: None,
        description: None,
        starts_at: None,
        ends_at: None,
        seats: None,
        capacity: Some(10),
        age_min_months: Some(3),
        age_max_months: Some(36),
    }
}

#[tokio::test]
async fn places_are_kept_by_the_staff_of_their_commune_and_vacancies_fit_the_capacity() {
    let desk = Desk::new();
    let gignac_staff = staff_of(Some(GIGNAC));
    let aniane = communes::valley().by_name("Aniane").unwrap();
    assert_eq!(
        refusal(
            desk.run(
                &gignac_staff,
                Command::UpdatePlace(childcare(None, &aniane.insee_code))
            )
            .await
        )
        .0,
        "forbidden"
    );
    let bad_ages = UpdatePlace {
        age_min_months: Some(40),
        ..childcare(None, GIGNAC)
    };
    assert_eq!(
        refusal(
            desk.run(&gignac_staff, Command::UpdatePlace(bad_ages))
                .await
        ),
        (
            "bad input",
            "range: ageMinMonths is above ageMaxMonths".into()
        )
    );
    assert!(desk.sink.sent().is_empty(), "nothing audited");

    let Applied::Place(place) = desk
        .run(&gignac_staff, Command::UpdatePlace(childcare(None, GIGNAC)))
        .await
        .unwrap()
    else {
        panic!("not a place");
    };
    let id = place.place.place_id.clone();
    assert_eq!(desk.topics(), [AUDIT, PLACES]);
    let vacancies = |n| Command::UpdateChildcareVacancies {
        place_id: id.clone(),
        vacancies: n,
    };
    assert_eq!(
        refusal(desk.run(&gignac_staff, vacancies(11)).await),
        (
            "bad input",
            "vacancies exceed the facility's capacity".into()
        )
    );
    let Applied::Place(place) = desk.run(&gignac_staff, vacancies(2)).await.unwrap() else {
        panic!("not a place");
    };
    assert_eq!(place.vacancies, Some(2));
    let moved = childcare(Some(id.clone()), &aniane.insee_code);
    assert_eq!(
        refusal(desk.run(&gignac_staff, Command::UpdatePlace(moved)).await).0,
        "forbidden"
    );
    let coworking = UpdatePlace {
        kind: PlaceKind::Coworking,
        ..childcare(Some(id.clone()), GIGNAC)
    };
    desk.run(&gignac_staff, Command::UpdatePlace(coworking))
        .await
        .unwrap();
    assert_eq!(
        refusal(desk.run(&gignac_staff, vacancies(1)).await),
        (
            "bad input",
            "only a childcare facility has vacancies".into()
        )
    );
    let removed = desk
        .run(
            &gignac_staff,
            Command::RemovePlace {
                place_id: id.clone(),
            },
        )
        .await
        .unwrap();
    assert!(matches!(removed, Applied::PlaceRemoved { place_id } if place_id == id));
    assert_eq!(
        refusal(desk.run(&gignac_staff, vacancies(1)).await),
        ("not found", "no such place".into())
    );
}

#[tokio::test]
async fn commands_are_limited_per_citizen_token_and_tokens_per_address() {
    let desk = Desk::with(ApiOptions {
        limits: Limits {
            mutations_per_minute_per_token: 2,
            tokens_per_minute_per_address: 2,
            ..Default::default()
        },
        ..Default::default()
    });
    let id = desk.idea(&citizen("spender"), None).await.submitted.idea_id;
    let support = || Command::SupportIdea {
        idea_id: id.clone(),
    };
    desk.run(&citizen("spender"), support()).await.unwrap();
    let (kind, message) = refusal(desk.run(&citizen("spender"), support()).await);
    assert_eq!(kind, "rate limited");
    assert!(
        message.starts_with("too many requests: retry in "),
        "{message}"
    );
    desk.run(&citizen("another"), support()).await.unwrap();

    let here: IpAddr = "192.0.2.1".parse().unwrap();
    let there: IpAddr = "192.0.2.2".parse().unwrap();
    let token = |from| {
        desk.commands
            .execute(&Caller::Anonymous, Some(from), Command::IssueCitizenToken)
    };
    for _ in 0..2 {
        assert!(matches!(token(here).await, Ok(Applied::CitizenToken(_))));
    }
    assert_eq!(refusal(token(here).await).0, "rate limited");
    token(there).await.unwrap();
}
