//! Photos of reports as a resident, a town-hall agent and a stranger meet them: a phone
//! photo is kept without where it was taken, shown to the public only once the town hall
//! accepted it, hidden again on demand; what is not a photo, too big, too many or sent too
//! often is refused with a reason.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::hub::*;

/// A JPEG as a phone writes it: an EXIF segment with a GPS position and the owner's name.
pub fn phone_photo() -> Vec<u8> {
    let picture =
        image::RgbImage::from_fn(48, 32, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, 90]));
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .unwrap();
    let jpeg = jpeg.into_inner();
    let mut app1 = b"Exif\0\0II*\0\x08\0\0\0\0\0\0\0\0\0".to_vec();
    app1.extend_from_slice(b"GPSLatitude 43.6521 GPSLongitude 3.5512 Owner Jeanne Martin");
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn send(hub: &Hub, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let answer = hub
        .client
        .post(hub.url("/media/v1/photos"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn fetch(hub: &Hub, url: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let mut request = hub.client.get(hub.url(url));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.bytes().await.unwrap().to_vec())
}

const SUBMIT: &str =
    "mutation($input: SubmitReportInput!) { submitReport(input: $input) { report { id } } }";
const PHOTOS: &str = "query($id: ID!) { report(id: $id) { photos { id url state } } }";

fn graffiti(photos: Value) -> Value {
    json!({"input": {"serviceCode": "graffiti", "description": "Tag sur le mur de l'école",
        "lat": 43.6521, "long": 3.5512, "photos": photos}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_is_public_only_once_accepted_and_never_says_where_it_was_taken() {
    let world = World::new(1).await;
    let hub = Hub::start_with(
        &world,
        "hub",
        "photos_per_minute_per_address = 6\nmax_photo_bytes = 200000\n",
    )
    .await;

    // Sent by the resident's browser before the report.
    let (status, sent) = send(&hub, "image/jpeg", phone_photo()).await;
    assert_eq!(status, 201, "{sent}");
    let photo = sent["photoId"].as_str().unwrap().to_string();
    assert_eq!(
        (sent["width"].as_u64(), sent["height"].as_u64()),
        (Some(48), Some(32))
    );

    // What is not a photo, whatever it claims, or is too big, is refused with a reason.
    let (status, why) = send(&hub, "text/plain", b"hello".to_vec()).await;
    assert_eq!(status, 415, "{why}");
    let (status, why) = send(&hub, "image/jpeg", b"<svg onload=alert(1)>".to_vec()).await;
    assert_eq!(status, 415, "{why}");
    assert!(why["error"].as_str().unwrap().contains("JPEG"), "{why}");
    // Refused unread: the connection is closed after the answer, so on a client of its own.
    let too_big = reqwest::Client::new()
        .post(hub.url("/media/v1/photos"))
        .header("content-type", "image/png")
        .body(vec![0u8; 300_000])
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status().as_u16(), 413, "over max_photo_bytes");

    // A report joins it; a photo never sent, or four, are refused.
    let refused = hub
        .gql(None, SUBMIT, graffiti(json!(["ab".repeat(32)])))
        .await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    let four = json!([
        photo.clone(),
        "1".repeat(64),
        "2".repeat(64),
        "3".repeat(64)
    ]);
    assert_eq!(
        code(&hub.gql(None, SUBMIT, graffiti(four)).await),
        "BAD_USER_INPUT"
    );
    let report = hub.ok(None, SUBMIT, graffiti(json!([photo.clone()]))).await["submitReport"]
        ["report"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("/media/photos/{photo}.jpg");
    // Joined once only.
    assert_eq!(
        code(
            &hub.gql(None, SUBMIT, graffiti(json!([photo.clone()])))
                .await
        ),
        "BAD_USER_INPUT"
    );

    // Not looked at yet: the public sees nothing; the town hall sees it, metadata gone.
    let public = hub.ok(None, PHOTOS, json!({"id": report})).await;
    assert_eq!(public["report"]["photos"], json!([]));
    assert_eq!(fetch(&hub, &url, None).await.0, 404);
    let open311 = format!("/open311/v2/requests/{report}.json");
    let media_url = |body: Vec<u8>| -> Value {
        serde_json::from_slice::<Value>(&body).unwrap()[0]["media_url"].clone()
    };
    assert_eq!(media_url(fetch(&hub, &open311, None).await.1), Value::Null);
    let staff = hub
        .ok(Some(GIGNAC_STAFF), PHOTOS, json!({"id": report}))
        .await;
    assert_eq!(
        staff["report"]["photos"],
        json!([{"id": photo, "url": url, "state": "PENDING"}])
    );
    let (status, jpeg) = fetch(&hub, &url, Some(GIGNAC_STAFF)).await;
    assert_eq!(status, 200);
    assert_eq!(
        image::guess_format(&jpeg).unwrap(),
        image::ImageFormat::Jpeg
    );
    for secret in [&b"GPSLatitude"[..], b"Jeanne", b"Exif"] {
        assert!(
            !contains(&jpeg, secret),
            "{}",
            String::from_utf8_lossy(secret)
        );
    }
    // A wrong token is refused, not taken for the public.
    assert_eq!(fetch(&hub, &url, Some("not-a-token")).await.0, 401);

    // Accepted: public. Hidden again: gone.
    let moderate = "mutation($id: ID!, $p: ID!, $v: Boolean!) {
        moderateReportPhoto(id: $id, photoId: $p, visible: $v) { report { photos { state } } } }";
    assert_eq!(
        code(
            &hub.gql(None, moderate, json!({"id": report, "p": photo, "v": true}))
                .await
        ),
        "UNAUTHENTICATED"
    );
    let accepted = hub
        .ok(
            Some(GIGNAC_STAFF),
            moderate,
            json!({"id": report, "p": photo, "v": true}),
        )
        .await;
    assert_eq!(
        accepted["moderateReportPhoto"]["report"]["photos"],
        json!([{"state": "ACCEPTED"}])
    );
    let (status, public_jpeg) = fetch(&hub, &url, None).await;
    assert_eq!((status, public_jpeg == jpeg), (200, true));
    let public = hub.ok(None, PHOTOS, json!({"id": report})).await;
    assert_eq!(public["report"]["photos"][0]["state"], "ACCEPTED");
    // Open311 clients get it as the request's media.
    assert_eq!(
        media_url(fetch(&hub, &open311, None).await.1),
        json!(format!("http://127.0.0.1:8080{url}")),
        "under [api.mail] public_url"
    );
    hub.ok(
        Some(GIGNAC_STAFF),
        moderate,
        json!({"id": report, "p": photo, "v": false}),
    )
    .await;
    assert_eq!(fetch(&hub, &url, None).await.0, 404);
    assert_eq!(
        hub.ok(None, PHOTOS, json!({"id": report})).await["report"]["photos"],
        json!([])
    );

    // Sent too often from one address: refused with when to try again.
    let mut limited = None;
    for _ in 0..8 {
        let answer = hub
            .client
            .post(hub.url("/media/v1/photos"))
            .header("content-type", "image/jpeg")
            .body(phone_photo())
            .send()
            .await
            .unwrap();
        if answer.status().as_u16() == 429 {
            limited = answer.headers().get("retry-after").cloned();
            break;
        }
    }
    assert!(limited.is_some(), "the 7th photo in a minute is refused");
    hub.stop().await;
}
