//! Describing the datasets: DCAT-AP (JSON-LD), the French SCDL "catalogue simplifié" (CSV)
//! and a Table Schema (tableschema.org, as schema.data.gouv.fr uses) derived from the
//! Arrow schema of each view.

use arrow::datatypes::{DataType, SchemaRef};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::{Dataset, DatasetState};

/// Who publishes, and under which licence.
#[derive(Debug, Clone)]
pub struct Publisher {
    pub name: String,
    /// SIREN of the intercommunality (its SIRET when configured).
    pub siren: String,
    pub siret: Option<String>,
    /// Public base URL of the hub (`http://host:port`), for the distribution links.
    pub base_url: String,
}

/// Licence Ouverte 2.0.
pub const LICENCE_URL: &str = "https://www.etalab.gouv.fr/licence-ouverte-open-licence/";
pub const LICENCE_SPDX: &str = "etalab-2.0";

/// The formats a dataset is served in.
pub fn formats(ds: &Dataset) -> Vec<(&'static str, &'static str)> {
    let mut f = vec![
        ("csv", "text/csv"),
        ("ndjson", "application/x-ndjson"),
        ("parquet", "application/vnd.apache.parquet"),
    ];
    if ds.point.is_some() {
        f.push(("geojson", "application/geo+json"));
    }
    f
}

/// The attribution the licence asks reusers to give.
pub fn attribution(publisher: &Publisher, modified: Option<DateTime<Utc>>) -> String {
    match modified {
        Some(t) => format!(
            "{} — données mises à jour le {}",
            publisher.name,
            t.format("%d/%m/%Y")
        ),
        None => format!("{} — aucune donnée publiée pour l'instant", publisher.name),
    }
}

/// Every dataset covers the intercommunality: its communes, by INSEE code.
fn spatial() -> Vec<Value> {
    vallee_schemas::communes::valley()
        .all()
        .iter()
        .map(|c| json!({"@id": format!("http://id.insee.fr/geo/commune/{}", c.insee_code), "dct:identifier": c.insee_code}))
        .collect()
}

/// DCAT-AP JSON-LD of the whole catalogue.
pub fn dcat_catalog(publisher: &Publisher, states: &[(&Dataset, DatasetState)]) -> Value {
    let base = &publisher.base_url;
    let datasets: Vec<Value> = states
        .iter()
        .map(|(ds, st)| {
            let modified = st.modified.map(|t| t.to_rfc3339());
            let distributions: Vec<Value> = formats(ds)
                .into_iter()
                .map(|(ext, media)| {
                    json!({
                        "@type": "dcat:Distribution",
                        "dct:title": format!("{} ({})", ds.title, ext.to_uppercase()),
                        "dcat:downloadURL": {"@id": format!("{base}/opendata/{}.{ext}", ds.id)},
                        "dcat:accessURL": {"@id": format!("{base}/opendata/{}.{ext}", ds.id)},
                        "dcat:mediaType": media,
                        "dct:format": ext.to_uppercase(),
                        "dct:license": {"@id": LICENCE_URL},
                        "dct:conformsTo": {"@id": format!("{base}/opendata/{}/schema.json", ds.id)},
                    })
                })
                .collect();
            let mut d = json!({
                "@id": format!("{base}/opendata/{}", ds.id),
                "@type": "dcat:Dataset",
                "dct:identifier": ds.id,
                "dct:title": {"@value": ds.title, "@language": "fr"},
                "dct:description": {"@value": ds.description, "@language": "fr"},
                "dcat:keyword": ds.keywords,
                "dcat:theme": {"@id": ds.dcat_theme},
                "dct:spatial": spatial(),
                "dct:accrualPeriodicity": {"@id": ds.frequency.dcat()},
                "dct:license": {"@id": LICENCE_URL},
                "dct:rights": attribution(publisher, st.modified),
                "dct:publisher": {"@type": "foaf:Agent", "foaf:name": publisher.name},
                "dcat:version": st.version.map(|v| v.to_string()).unwrap_or_else(|| "none".into()),
                "dcat:distribution": distributions,
            });
            if let Some(m) = modified {
                d["dct:modified"] = json!({"@value": m, "@type": "xsd:dateTime"});
            }
            if let Some((start, end)) = st.coverage {
                d["dct:temporal"] = json!({
                    "@type": "dct:PeriodOfTime",
                    "dcat:startDate": {"@value": start.to_string(), "@type": "xsd:date"},
                    "dcat:endDate": {"@value": end.to_string(), "@type": "xsd:date"},
                });
            }
            d
        })
        .collect();
    json!({
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
        },
        "@id": format!("{base}/opendata/catalog.jsonld"),
        "@type": "dcat:Catalog",
        "dct:title": {"@value": format!("Données ouvertes — {}", publisher.name), "@language": "fr"},
        "dct:publisher": {"@type": "foaf:Agent", "foaf:name": publisher.name, "dct:identifier": publisher.siren},
        "dct:license": {"@id": LICENCE_URL},
        "dcat:dataset": datasets,
    })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', ';']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The SCDL "catalogue simplifié" (schema.data.gouv.fr `scdl/catalogue`), one row per
/// dataset.
pub fn scdl_catalog(publisher: &Publisher, states: &[(&Dataset, DatasetState)]) -> String {
    let mut out = String::from(
        "COLL_NOM,COLL_SIRET,ID,TITRE,DESCRIPTION,THEME,PRODUCTEUR_NOM,PRODUCTEUR_SIRET,COUV_SPAT_MAILLE,COUV_SPAT_NOM,COUV_TEMP_DEBUT,COUV_TEMP_FIN,DATE_PUBL,FREQ_MAJ,DATE_MAJ,MOTS_CLES,LICENCE,NOMBRE_RESSOURCES,FORMAT_RESSOURCES,URL\n",
    );
    let siret = publisher.siret.clone().unwrap_or_default();
    for (ds, st) in states {
        let (start, end) = st
            .coverage
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap_or_default();
        let modified = st
            .modified
            .map(|t| t.date_naive().to_string())
            .unwrap_or_default();
        let formats: Vec<&str> = formats(ds).into_iter().map(|(e, _)| e).collect();
        let row = [
            publisher.name.clone(),
            siret.clone(),
            ds.id.to_string(),
            ds.title.to_string(),
            ds.description.to_string(),
            ds.theme.to_string(),
            publisher.name.clone(),
            siret.clone(),
            "Intercommunale".into(),
            publisher.name.clone(),
            start.clone(),
            end,
            start,
            ds.frequency.scdl().into(),
            modified,
            ds.keywords.join(";"),
            "Licence Ouverte-LO".into(),
            formats.len().to_string(),
            formats.join(";"),
            format!("{}/opendata/{}.csv", publisher.base_url, ds.id),
        ];
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

fn table_schema_type(t: &DataType) -> (&'static str, Option<&'static str>) {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("string", None),
        DataType::Boolean => ("boolean", None),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => ("integer", None),
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            ("number", None)
        }
        DataType::Date32 | DataType::Date64 => ("date", Some("%Y-%m-%d")),
        DataType::Timestamp(..) => ("datetime", None),
        _ => ("any", None),
    }
}

/// The Table Schema of a dataset (field types from the view's Arrow schema).
pub fn table_schema(publisher: &Publisher, ds: &Dataset, schema: &SchemaRef) -> Value {
    let fields: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| {
            let (kind, format) = table_schema_type(f.data_type());
            let mut field = json!({
                "name": f.name(),
                "type": kind,
                "description": ds.columns.iter().find(|(n, _)| n == f.name()).map(|(_, d)| *d).unwrap_or(""),
            });
            if let Some(fmt) = format {
                field["format"] = json!(fmt);
            }
            field
        })
        .collect();
    json!({
        "$schema": "https://frictionlessdata.io/schemas/table-schema.json",
        "name": ds.id,
        "title": ds.title,
        "description": ds.description,
        "keywords": ds.keywords,
        "licenses": [{"name": LICENCE_SPDX, "title": "Licence Ouverte / Open Licence version 2.0", "path": LICENCE_URL}],
        "contributors": [{"title": publisher.name, "role": "author"}],
        "missingValues": [""],
        "fields": fields,
    })
}
