use super::*;
use crate::families::testing::{Harness, decoded};

fn weather(at: DateTime<Utc>, temperature: f64, rain: f64) -> Decoded {
    decoded(
        Stream::Vineyards,
        &format!(
            r#"{{"id":"urn:ngsi-ld:WeatherObserved:st-1","type":"WeatherObserved","dateObserved":"{}","temperature":{temperature},"precipitation":{rain},"refParcels":["p1"],"location":{{"type":"Point","coordinates":[3.59,43.68]}}}}"#,
            at.to_rfc3339()
        ),
    )
}

#[test]
fn downy_mildew_risk_opens_on_the_3_10_rule_and_clears_when_the_rain_is_48_hours_old() {
    let options = StreamOptions::default();
    // 10 May (local day: 22:00 UTC the day before): 24 mm at 15 °C; 11 and 12 May dry.
    let start: DateTime<Utc> = "2026-05-09T22:00:00Z".parse().unwrap();
    let run = |vine: Vine| {
        let mut h = Harness::new(&options, vine);
        for hour in 0..74 {
            let rain = if hour < 24 { 1.0 } else { 0.0 };
            let event = weather(start + Duration::hours(hour), 15.0, rain);
            h.event(Stream::Vineyards, "v", 0, hour, &event);
        }
        h.tick();
        h.family
    };
    let p = run(Vine::new(&options));
    let rows: Vec<(&str, &str, Option<&str>, String, usize)> = p
        .pending
        .alerts
        .iter()
        .map(|r| {
            (
                r.kind,
                r.state,
                r.risk_level,
                r.date_observed.to_rfc3339(),
                r.lineage.ranges().count(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "downy_mildew",
                "open",
                Some("high"),
                "2026-05-10T22:00:00+00:00".to_string(),
                1
            ),
            (
                "downy_mildew",
                "cleared",
                Some("low"),
                "2026-05-12T22:00:00+00:00".to_string(),
                1
            ),
        ],
        "open at the end of the rainy day, still high the next (48 h), cleared the day after"
    );
    let ids: Vec<&str> = p
        .pending
        .alerts
        .iter()
        .map(|r| r.alert_id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["p1:downy_mildew:2026-05-10", "p1:downy_mildew:2026-05-10"]
    );
    // The day row names the 24 readings of its day: offsets 24 to 47 for 11 May.
    let day = &p.pending.days[1];
    assert_eq!(
        day.lineage.ranges().collect::<Vec<_>>(),
        vec![("v", 0, 24, 47)]
    );
    // A restart that restores the state from the tables adds nothing.
    let mut restored = Vine::new(&options);
    restored.emitted = p.emitted.clone();
    restored.mildew = p.mildew.clone();
    restored.seasons = p.seasons.clone();
    let again = run(restored);
    assert!(again.pending.alerts.is_empty() && again.pending.days.is_empty());
}
