//! Photos joined to citizens' reports.
//!
//! ```text
//!  POST /media/v1/photos (JPEG, PNG or WebP, ≤ max_photo_bytes)
//!     │ the limits' middleware (per address), then photos_per_minute_per_address
//!     ▼
//!  decode under limits (width, height, memory: a small file claiming a huge canvas is
//!  refused before anything is allocated) ─► turn upright (EXIF orientation) ─► fit in
//!  2 048 px ─► encode as a new JPEG: only pixels survive, no EXIF (GPS, camera, owner),
//!  no XMP, no comment
//!     ▼
//!  <lake root>/_media/photos/<sha-256 of the JPEG>.jpg   ─► 201 {"photoId": …}
//!  (a folder beside the tables, or the lake's bucket: replicas share it)
//!
//!  submitReport(input: {photos: [id…]})   up to 3, each in the store
//!  moderateReportPhoto(id, photoId, visible) (staff of the report's scope)
//!  GET /media/photos/<id>.jpg   the public: accepted photos of reports not erased;
//!                               staff of the report's scope: any of its photos
//! ```
//!
//! The store is content-addressed (the same photo sent twice is one file) and lives under
//! the lake's root, in a folder no Delta reader opens (`_media`): on disk beside the
//! tables, or in their bucket, where a photo sent to one replica joins a report submitted
//! through another and either serves it. A photo no report
//! names a day after it was sent, or whose report's texts were erased, is deleted by
//! [`PhotoStore::sweep`], run hourly by the API.

use std::collections::HashSet;
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::json;
use sha2::{Digest, Sha256};
use vallee_lake::{Blobs, Lake};

use crate::ApiState;
use crate::auth::Caller;
use crate::rate_limit::address_key;
use crate::schema::codes::ClientAddr;

/// Longest side of a stored photo, in pixels.
pub const MAX_SIDE: u32 = 2_048;
/// Largest picture decoded: width, height and pixels (about 40 megapixels).
const MAX_DIMENSION: u32 = 12_000;
const MAX_PIXELS: u64 = 40_000_000;
/// Memory a decoder may take.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
/// JPEG quality of the stored copy.
const QUALITY: u8 = 85;
/// How long a photo no report names is kept.
pub const UNCLAIMED_FOR: Duration = Duration::from_secs(24 * 3600);

/// Why a photo was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoRefused {
    /// Not a JPEG, PNG or WebP picture (whatever the request said).
    #[error("not a JPEG, PNG or WebP picture")]
    NotAPhoto,
    #[error("the picture is {0}×{1} pixels: at most {MAX_DIMENSION} a side and 40 megapixels")]
    TooManyPixels(u32, u32),
    #[error("the picture cannot be read: {0}")]
    Broken(String),
}

/// A photo as stored: its id and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: String,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
}

/// The JPEG kept of a sent picture: upright, at most [`MAX_SIDE`] a side, pixels only.
pub fn reencode(sent: &[u8]) -> Result<(Vec<u8>, u32, u32), PhotoRefused> {
    let format = image::guess_format(sent).map_err(|_| PhotoRefused::NotAPhoto)?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP
    ) {
        return Err(PhotoRefused::NotAPhoto);
    }
    let mut reader = ImageReader::with_format(Cursor::new(sent), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let broken = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => PhotoRefused::TooManyPixels(0, 0),
        e => PhotoRefused::Broken(e.to_string()),
    };
    let mut decoder = reader.into_decoder().map_err(broken)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(PhotoRefused::TooManyPixels(width, height));
    }
    let orientation = decoder.orientation().map_err(broken)?;
    let mut picture = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => PhotoRefused::TooManyPixels(width, height),
        e => PhotoRefused::Broken(e.to_string()),
    })?;
    picture.apply_orientation(orientation);
    if picture.width() > MAX_SIDE || picture.height() > MAX_SIDE {
        picture = picture.resize(MAX_SIDE, MAX_SIDE, image::imageops::FilterType::Triangle);
    }
    let rgb = DynamicImage::ImageRgb8(picture.to_rgb8());
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(&rgb)
        .map_err(|e| PhotoRefused::Broken(e.to_string()))?;
    Ok((out, rgb.width(), rgb.height()))
}

/// Whether `id` can name a stored photo (64 lower-case hex digits).
pub fn is_photo_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The photos, in the lake's place: a folder beside the tables, or the lake's bucket
/// (which every replica then shares).
#[derive(Debug)]
pub struct PhotoStore {
    blobs: Blobs,
    /// Bytes stored (read at start, kept up to date by this process; replicas sharing a
    /// bucket each count their own puts since they started).
    used: AtomicU64,
    quota: u64,
}

impl PhotoStore {
    /// The store `_media/photos` under the lake's root, holding at most `quota` bytes.
    pub async fn open(lake: &Lake, quota: u64) -> std::io::Result<Self> {
        let blobs = lake
            .blobs("_media/photos")
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Self::on(blobs, quota).await
    }

    async fn on(blobs: Blobs, quota: u64) -> std::io::Result<Self> {
        let store = PhotoStore {
            blobs,
            used: AtomicU64::new(0),
            quota,
        };
        let used = store.files().await?.iter().map(|(_, _, len)| len).sum();
        store.used.store(used, Ordering::Relaxed);
        Ok(store)
    }

    fn path(&self, id: &str) -> ObjectPath {
        self.blobs.path(&format!("{id}.jpg"))
    }

    /// Whether photo `id` is stored.
    pub async fn contains(&self, id: &str) -> bool {
        is_photo_id(id) && self.blobs.store.head(&self.path(id)).await.is_ok()
    }

    /// Photo `id`'s JPEG.
    pub async fn read(&self, id: &str) -> std::io::Result<Vec<u8>> {
        if !is_photo_id(id) {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        let got = self.blobs.store.get(&self.path(id)).await.map_err(io)?;
        Ok(got.bytes().await.map_err(io)?.to_vec())
    }

    /// Stores a re-encoded photo (written whole or not at all; on disk, synced). `None`:
    /// the store is full.
    pub async fn put(&self, jpeg: &[u8]) -> std::io::Result<Option<String>> {
        let id = hex::encode(Sha256::digest(jpeg));
        let path = self.path(&id);
        let known = self.blobs.store.head(&path).await.is_ok();
        let len = jpeg.len() as u64;
        if !known && self.used.load(Ordering::Relaxed) + len > self.quota {
            return Ok(None);
        }
        // Sent again: written again, so that its day to be joined to a report starts again.
        let payload = PutPayload::from(Bytes::copy_from_slice(jpeg));
        self.blobs.store.put(&path, payload).await.map_err(io)?;
        if let Some(dir) = &self.blobs.local {
            let file = dir.join(format!("{id}.jpg"));
            tokio::task::spawn_blocking(move || std::fs::File::open(file)?.sync_all())
                .await
                .map_err(std::io::Error::other)??;
        }
        if !known {
            self.used.fetch_add(len, Ordering::Relaxed);
        }
        Ok(Some(id))
    }

    /// Every stored photo: id, last change, bytes.
    async fn files(&self) -> std::io::Result<Vec<(String, SystemTime, u64)>> {
        let mut out = Vec::new();
        let mut listed = self.blobs.store.list(Some(&self.blobs.prefix));
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(io)?;
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let Some(id) = name.strip_suffix(".jpg").filter(|i| is_photo_id(i)) else {
                continue;
            };
            out.push((id.to_string(), meta.last_modified.into(), meta.size));
        }
        Ok(out)
    }

    /// Deletes the photos no report in `named` names that are older than
    /// [`UNCLAIMED_FOR`], and those in `erased`. Returns how many went.
    pub async fn sweep(
        &self,
        named: &HashSet<String>,
        erased: &HashSet<String>,
    ) -> std::io::Result<usize> {
        let now = SystemTime::now();
        let (mut removed, mut kept) = (0, 0);
        for (id, modified, len) in self.files().await? {
            let unclaimed = !named.contains(&id)
                && now.duration_since(modified).unwrap_or_default() > UNCLAIMED_FOR;
            if !(unclaimed || erased.contains(&id)) {
                kept += len;
                continue;
            }
            match self.blobs.store.delete(&self.path(&id)).await {
                Ok(()) => removed += 1,
                // Another replica swept it first.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(io(e)),
            }
        }
        // What the store holds now, whoever sent or deleted it (replicas sharing a bucket
        // each count their own uploads between sweeps).
        self.used.store(kept, Ordering::Relaxed);
        Ok(removed)
    }
}

fn io(e: object_store::Error) -> std::io::Error {
    match e {
        object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound.into(),
        other => std::io::Error::other(other.to_string()),
    }
}

/// `POST /media/v1/photos` and `GET /media/photos/{id}.jpg` (behind the limits'
/// middleware; the body limit is `max_photo_bytes`, set where the routes are merged).
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/media/v1/photos", post(upload))
        .route("/media/photos/{file}", get(photo))
        .with_state(state)
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// Photos being re-encoded at once, all clients together: the rest wait their turn.
static ENCODING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn upload(
    State(state): State<Arc<ApiState>>,
    client: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !matches!(declared.as_str(), "image/jpeg" | "image/png" | "image/webp") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the photo itself as the body, with Content-Type image/jpeg, image/png or image/webp",
        );
    }
    if let Some(axum::Extension(ClientAddr(addr))) = client {
        let limit = state.options.limits.photos_per_minute_per_address;
        if let Err(wait) = state
            .photo_limiter
            .check(&address_key("photo", addr), limit)
        {
            let mut answer = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many photos from this address: retry in {wait} s"),
            );
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                answer.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return answer;
        }
    }
    let Some(store) = state.photos.clone() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "photos are not kept here");
    };
    let Ok(_turn) = ENCODING.acquire().await else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the hub is stopping");
    };
    let encoded = tokio::task::spawn_blocking(move || reencode(&body)).await;
    let done = match encoded {
        Ok(Ok((jpeg, width, height))) => store
            .put(&jpeg)
            .await
            .map(|id| {
                id.map(|id| Stored {
                    id,
                    width,
                    height,
                    bytes: jpeg.len(),
                })
            })
            .map_err(|e| PhotoRefused::Broken(format!("cannot store it: {e}"))),
        Ok(Err(refused)) => Err(refused),
        Err(e) => {
            tracing::error!(error = %e, "re-encoding a photo failed");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the photo could not be read",
            );
        }
    };
    match done {
        Ok(Some(s)) => (
            StatusCode::CREATED,
            axum::Json(
                json!({"photoId": s.id, "width": s.width, "height": s.height, "bytes": s.bytes}),
            ),
        )
            .into_response(),
        Ok(None) => refuse(
            StatusCode::INSUFFICIENT_STORAGE,
            "the photo store is full: try again later",
        ),
        Err(PhotoRefused::NotAPhoto) => refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PhotoRefused::NotAPhoto.to_string(),
        ),
        Err(e) => refuse(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

async fn photo(
    State(state): State<Arc<ApiState>>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let not_found = || refuse(StatusCode::NOT_FOUND, "no such photo");
    let Some(id) = file.strip_suffix(".jpg").filter(|i| is_photo_id(i)) else {
        return not_found();
    };
    let caller = match state.auth.caller(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    ) {
        Ok(c) => c,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, e.to_string()),
    };
    let shown = {
        let view = state.citizens.view.read().expect("view lock");
        view.photo(id).map(|(report, photo)| {
            let staff_sees = match &caller {
                Caller::Staff(s) => s
                    .commune
                    .as_deref()
                    .is_none_or(|c| c == report.submitted.commune_code),
                _ => false,
            };
            let public = photo.visible == Some(true) && !report.erased;
            (public, staff_sees && !report.erased)
        })
    };
    let Some((public, staff)) = shown else {
        return not_found();
    };
    if !public && !staff {
        return not_found();
    }
    let Some(store) = state.photos.clone() else {
        return not_found();
    };
    let id = id.to_string();
    let Ok(jpeg) = store.read(&id).await else {
        return not_found();
    };
    let cache = if public {
        "public, max-age=300"
    } else {
        "private, no-store"
    };
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
        ],
        jpeg,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 5) as u8, 128])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut out, format)
            .unwrap();
        out.into_inner()
    }

    /// A JPEG with an EXIF segment right after its start: a GPS position, a camera, an
    /// owner's name, and orientation 6 (the camera was turned: the picture is to be
    /// turned a quarter clockwise).
    fn phone_photo(width: u32, height: u32) -> Vec<u8> {
        let jpeg = picture(width, height, ImageFormat::Jpeg);
        // TIFF header (little endian), one IFD with the orientation, then markers of
        // what a phone writes (read by people, not parsed here).
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&1u16.to_le_bytes());
        tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&6u16.to_le_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_le_bytes());
        tiff.extend_from_slice(b"GPSLatitude 43.6521 Pixel-9 Owner Jeanne Martin");
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    /// CRC-32 of a PNG chunk (type and data).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_phone_photo_is_kept_upright_without_its_metadata() {
        let sent = phone_photo(40, 30);
        assert!(contains(&sent, b"GPSLatitude") && contains(&sent, b"Exif"));
        let (kept, width, height) = reencode(&sent).unwrap();
        for secret in [&b"GPSLatitude"[..], b"Pixel-9", b"Jeanne", b"Exif"] {
            assert!(
                !contains(&kept, secret),
                "{}",
                String::from_utf8_lossy(secret)
            );
        }
        // Turned as the camera said: 30 wide, 40 high.
        assert_eq!((width, height), (30, 40));
        let back = image::load_from_memory(&kept).unwrap();
        assert_eq!((back.width(), back.height()), (30, 40));
    }

    #[test]
    fn png_and_webp_become_jpeg_and_large_ones_shrink() {
        for format in [ImageFormat::Png, ImageFormat::WebP] {
            let (kept, ..) = reencode(&picture(20, 10, format)).unwrap();
            assert_eq!(image::guess_format(&kept).unwrap(), ImageFormat::Jpeg);
        }
        let (_, width, height) = reencode(&picture(4_100, 1_000, ImageFormat::Png)).unwrap();
        assert_eq!((width, height), (MAX_SIDE, 500));
    }

    #[test]
    fn what_is_not_a_photo_or_claims_a_huge_canvas_is_refused() {
        assert_eq!(
            reencode(b"<svg onload=alert(1)>"),
            Err(PhotoRefused::NotAPhoto)
        );
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
        assert_eq!(reencode(gif), Err(PhotoRefused::NotAPhoto));
        // PNG headers claiming 60 000 × 60 000 and 10 000 × 10 000 pixels, with almost
        // nothing behind them: refused before a pixel is allocated.
        for (side, refused) in [(60_000u32, (0, 0)), (10_000, (10_000, 10_000))] {
            let mut bomb = picture(1, 1, ImageFormat::Png);
            bomb[16..20].copy_from_slice(&side.to_be_bytes());
            bomb[20..24].copy_from_slice(&side.to_be_bytes());
            let crc = crc32(&bomb[12..29]);
            bomb[29..33].copy_from_slice(&crc.to_be_bytes());
            assert_eq!(
                reencode(&bomb),
                Err(PhotoRefused::TooManyPixels(refused.0, refused.1))
            );
        }
        // Cut short.
        let jpeg = picture(64, 64, ImageFormat::Jpeg);
        assert!(matches!(
            reencode(&jpeg[..jpeg.len() / 3]),
            Err(PhotoRefused::Broken(_))
        ));
    }

    /// The store on a folder, as a lake in a folder opens it.
    async fn store_in(dir: &std::path::Path, quota: u64) -> PhotoStore {
        let blobs = Blobs {
            store: Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap()),
            prefix: ObjectPath::default(),
            local: Some(dir.to_path_buf()),
        };
        PhotoStore::on(blobs, quota).await.unwrap()
    }

    #[tokio::test]
    async fn the_store_keeps_one_copy_within_its_quota_and_sweeps_the_unclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path(), 1_000).await;
        let id = store.put(&[1u8; 600]).await.unwrap().unwrap();
        assert!(is_photo_id(&id) && store.contains(&id).await);
        assert!(
            dir.path().join(format!("{id}.jpg")).is_file(),
            "beside the tables"
        );
        assert_eq!(
            store.put(&[1u8; 600]).await.unwrap(),
            Some(id.clone()),
            "one copy"
        );
        assert_eq!(
            store.put(&[2u8; 600]).await.unwrap(),
            None,
            "over the quota"
        );
        assert!(!store.contains("../../etc/passwd").await && store.read("..").await.is_err());
        // Named by a report: kept; the report erased: gone, and its room back.
        let named: HashSet<String> = [id.clone()].into();
        assert_eq!(store.sweep(&named, &HashSet::new()).await.unwrap(), 0);
        assert_eq!(store.sweep(&named, &named).await.unwrap(), 1);
        assert!(store.put(&[2u8; 600]).await.unwrap().is_some());
        // Reopened, the store counts what it holds.
        let again = store_in(dir.path(), 1_000).await;
        assert_eq!(again.put(&[3u8; 600]).await.unwrap(), None);
        // Unclaimed for two days: swept, unless sent again meanwhile.
        let old = |id: &str| {
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(format!("{id}.jpg")))
                .unwrap()
                .set_modified(SystemTime::now() - 2 * UNCLAIMED_FOR)
                .unwrap();
        };
        let kept = again.put(&[2u8; 600]).await.unwrap().unwrap();
        old(&kept);
        assert_eq!(again.put(&[2u8; 600]).await.unwrap(), Some(kept.clone()));
        assert_eq!(
            again.sweep(&HashSet::new(), &HashSet::new()).await.unwrap(),
            0
        );
        old(&kept);
        assert_eq!(
            again.sweep(&HashSet::new(), &HashSet::new()).await.unwrap(),
            1
        );
        assert!(!again.contains(&kept).await);
        assert_eq!(
            again.read(&kept).await.unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
    }
}
