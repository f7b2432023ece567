//! `/admin/v1/customers`: the people messages go to. Create one, import many from CSV (streamed), read, list.
//!
//! The phone is required and must be E.164; every other field is optional and stored as NULL when blank
//! (a template renders a missing field as its fallback, or nothing).
//!
//! An import is all or nothing: rows are written inside one transaction as the body streams in, and if any
//! row is malformed nothing is kept and the answer lists the bad rows by line number, as segment uploads do
//! (the file is read by [`crate::http::upload::csv`]: the header is line 1, and a row whose quoted field
//! spans lines is numbered by its first). A row whose phone is already known replaces that customer's
//! fields, so an import can be run again.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use popup_core::campaign::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Postgres, Transaction};

use super::phone::{is_e164, E164_MESSAGE};
use crate::db::audit;
use crate::db::customers::{self, CreateError, CustomerView};
use crate::http::page::{PageQuery, Paged};
use crate::http::upload::csv::{CsvReader, LineErrors, Read};
use crate::http::upload::LimitedUpload;
use crate::http::{ApiError, Editor, JsonBody, Path, Query, Viewer};
use crate::state::AppState;
use popup_core::wire::ErrorResponse;

/// The longest optional field, in characters.
const MAX_FIELD_CHARS: usize = 200;
/// Rows written per statement during an import.
const ROWS_PER_BATCH: usize = 5_000;
/// The CSV columns an import understands; `phone` is required.
const COLUMNS: [&str; 7] =
    ["phone", "external_id", "first_name", "last_name", "email", "location", "preferred_product"];

#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    pub phone: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub preferred_product: Option<String>,
}

impl NewCustomer {
    /// Trims every field and turns blank optional fields into `None`, then lists what breaks a rule.
    fn normalize(mut self) -> (NewCustomer, Vec<FieldError>) {
        let mut errors = Vec::new();
        self.phone = self.phone.trim().to_string();
        if !is_e164(&self.phone) {
            errors.push(FieldError::new("phone", E164_MESSAGE));
        }
        for (name, value) in self.optional_fields_mut() {
            *value = value.take().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
            // Postgres cannot store it; a JSON body with one never gets here, but an imported row can.
            if value.as_ref().is_some_and(|v| v.contains('\0')) {
                errors.push(FieldError::new(name, "must not contain the NUL character"));
            }
            if value.as_ref().is_some_and(|v| v.chars().count() > MAX_FIELD_CHARS) {
                errors.push(FieldError::new(name, format!("must be at most {MAX_FIELD_CHARS} characters")));
            }
        }
        if self.email.as_deref().is_some_and(|email| !looks_like_email(email)) {
            errors.push(FieldError::new("email", "must look like name@domain"));
        }
        (self, errors)
    }

    fn optional_fields_mut(&mut self) -> [(&'static str, &mut Option<String>); 6] {
        [
            ("external_id", &mut self.external_id),
            ("first_name", &mut self.first_name),
            ("last_name", &mut self.last_name),
            ("email", &mut self.email),
            ("location", &mut self.location),
            ("preferred_product", &mut self.preferred_product),
        ]
    }
}

/// A sanity check, not a validation: one `@` with something on both sides and no spaces.
fn looks_like_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    }
}

impl NewCustomer {
    /// As `db::customers` writes it.
    fn as_row(&self) -> customers::NewCustomer<'_> {
        customers::NewCustomer {
            phone: &self.phone,
            external_id: self.external_id.as_deref(),
            first_name: self.first_name.as_deref(),
            last_name: self.last_name.as_deref(),
            email: self.email.as_deref(),
            location: self.location.as_deref(),
            preferred_product: self.preferred_product.as_deref(),
        }
    }
}

/// Unique phones and external ids answer 409 with what clashed.
fn taken(error: CreateError) -> ApiError {
    match error {
        CreateError::Taken(_) => ApiError::Conflict(error.to_string()),
        CreateError::Db(error) => error.into(),
    }
}

#[utoipa::path(
    post,
    path = "/customers",
    tag = "customers",
    security(("api_key" = [])),
    request_body = NewCustomer,
    responses(
        (status = 201, body = CustomerView),
        (status = 409, description = "The phone or the external id is taken.", body = ErrorResponse),
        (status = 422, description = "A field breaks a rule (the phone must be E.164), or the body does not parse.", body = ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Editor(actor): Editor,
    JsonBody(customer): JsonBody<NewCustomer>,
) -> Result<(StatusCode, Json<CustomerView>), ApiError> {
    let (customer, errors) = customer.normalize();
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let row = customers::create(&state.db, &actor, &customer.as_row()).await.map_err(taken)?;
    Ok((StatusCode::CREATED, Json(row)))
}

#[utoipa::path(
    get,
    path = "/customers/{id}",
    tag = "customers",
    security(("api_key" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = CustomerView),
        (status = 404, description = "No such customer.", body = ErrorResponse),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<i64>,
) -> Result<Json<CustomerView>, ApiError> {
    let row = customers::get(&state.db, id).await?.ok_or(ApiError::NotFound("customer"))?;
    Ok(Json(row))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    /// An exact phone number.
    phone: Option<String>,
    // Not flattened: serde's flatten reads query values as strings only.
    /// The page, from 1 (the default); below 1 is 1. At most 1000000; more, or not a whole number, is 400.
    #[param(value_type = Option<i64>, maximum = 1000000)]
    page: Option<String>,
    /// Rows per page, 20 by default; above 100 is 100, below 1 is the default. Not a whole number is 400.
    #[param(value_type = Option<i64>)]
    page_size: Option<String>,
    /// The `pagination.as_of` of the first page: pages through the same rows while new ones are inserted.
    #[param(minimum = 0)]
    as_of: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/customers",
    tag = "customers",
    summary = "Customers, newest first",
    security(("api_key" = [])),
    params(ListFilter),
    responses((status = 200, body = Paged<CustomerView>))
)]
pub async fn list(
    State(state): State<AppState>,
    _: Viewer,
    Query(filter): Query<ListFilter>,
) -> Result<Json<Paged<CustomerView>>, ApiError> {
    let page = PageQuery { page: filter.page, page_size: filter.page_size }.validate()?;
    let as_of = crate::http::page::as_of(filter.as_of, || customers::newest_id(&state.db)).await?;
    let (items, total) =
        customers::list(&state.db, as_of, filter.phone.as_deref(), page.page_size, page.offset()).await?;
    Ok(Json(Paged::new(items, page, total).as_of(as_of)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportResult {
    /// Data rows read (the header not counted).
    pub rows: u64,
    pub inserted: u64,
    pub updated: u64,
}

/// `POST /admin/v1/customers/import`: a CSV with a header naming its columns (any of [`COLUMNS`], `phone`
/// required, in any order).
#[utoipa::path(
    post,
    path = "/customers/import",
    tag = "customers",
    summary = "Create or update customers from a CSV, all rows or none",
    security(("api_key" = [])),
    request_body(content = String, content_type = "text/csv", description = "A header naming the columns \
                 (`phone` required; `external_id`, `first_name`, `last_name`, `email`, `location`, \
                 `preferred_product`), then a row per customer."),
    responses(
        (status = 200, body = ImportResult),
        (status = 409, description = "An external id is taken by another customer.", body = ErrorResponse),
        (status = 413, description = "Larger than the upload limit.", body = ErrorResponse),
        (status = 422, description = "Bad rows, listed as `line N` (the header is line 1).", body = ErrorResponse),
    )
)]
pub async fn import(
    State(state): State<AppState>,
    Editor(actor): Editor,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportResult>, ApiError> {
    Ok(Json(import_csv(&state, &actor, &headers, body).await?))
}

/// Reads the CSV of `body` and writes its customers, as `actor`, all or none: for this API and the dashboard.
pub async fn import_csv(
    state: &AppState,
    actor: &crate::db::audit::Actor,
    headers: &HeaderMap,
    body: Body,
) -> Result<ImportResult, ApiError> {
    let mut upload = LimitedUpload::new(headers, body, state.max_segment_bytes)?;
    let mut tx = crate::db::begin(&state.db).await?;
    let mut import = Import::default();
    let mut csv = CsvReader::default();
    while let Some(chunk) = upload.next_chunk().await? {
        csv.feed(&chunk, |record| import.record(record));
        import.flush_if_full(&mut tx).await?;
    }
    csv.finish(|record| import.record(record));
    import.finish(&mut tx).await?;
    let result = ImportResult { rows: import.rows, inserted: import.inserted, updated: import.updated };
    audit::record(&mut tx, actor, "import", "customer", "*", None, Some(json!(result))).await?;
    tx.commit().await?;
    Ok(result)
}

/// What a customer CSV says, read in memory: the data rows, the customers they hold (none once a row is
/// bad), and the problems, of the file (its header) or of its lines.
#[derive(Debug)]
pub struct CustomerFile {
    pub rows: u64,
    pub customers: usize,
    pub problems: Vec<popup_core::campaign::FieldError>,
}

/// Reads a customer CSV handed over in `chunks` as an import does, without writing it: for checking the
/// reader itself (its fuzz target).
pub fn read_customer_file(chunks: &[&[u8]]) -> CustomerFile {
    let mut import = Import::default();
    CsvReader::read_all(chunks.iter().copied(), |record| import.record(record));
    let mut problems = import.errors.listed().to_vec();
    if let Some(ApiError::Invalid(fatal)) = import.fatal {
        problems.extend(fatal);
    }
    CustomerFile { rows: import.rows, customers: import.pending.len(), problems }
}

/// The state of one import: the header's column positions, the rows waiting to be written, counts, errors.
#[derive(Default)]
struct Import {
    /// Position of each of [`COLUMNS`] in the file; `None` until the header is read.
    columns: Option<[Option<usize>; COLUMNS.len()]>,
    width: usize,
    rows: u64,
    pending: Vec<NewCustomer>,
    inserted: u64,
    updated: u64,
    errors: LineErrors,
    /// A problem with the file as a whole (its header): nothing else is worth reading.
    fatal: Option<ApiError>,
}

impl Import {
    fn record(&mut self, record: Read<'_>) {
        if self.fatal.is_some() {
            return;
        }
        let record = match record {
            Ok(record) => record,
            Err(bad) => return self.errors.add_bad(bad),
        };
        let Some(columns) = self.columns else {
            return self.header(record.fields().collect());
        };
        self.rows += 1;
        let line = record.line();
        if record.len() != self.width {
            let message = format!("has {} fields; the header has {}", record.len(), self.width);
            return self.errors.add(line, message);
        }
        let value = |index: usize| columns[index].and_then(|at| record.get(at)).map(str::to_string);
        let customer = NewCustomer {
            phone: value(0).unwrap_or_default(),
            external_id: value(1),
            first_name: value(2),
            last_name: value(3),
            email: value(4),
            location: value(5),
            preferred_product: value(6),
        };
        let (customer, errors) = customer.normalize();
        if errors.is_empty() {
            // Once a row is bad nothing will be written, so the rest are only checked.
            if self.errors.is_empty() {
                self.pending.push(customer);
            }
        } else {
            let message =
                errors.into_iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>();
            self.errors.add(line, message.join("; "));
        }
    }

    fn header(&mut self, fields: Vec<&str>) {
        let mut columns = [None; COLUMNS.len()];
        for (at, name) in fields.iter().enumerate() {
            let name = name.trim().to_ascii_lowercase();
            match COLUMNS.iter().position(|c| *c == name) {
                Some(index) if columns[index].is_some() => {
                    self.fatal = Some(ApiError::field("header", format!("column {name:?} appears twice")));
                    return;
                }
                Some(index) => columns[index] = Some(at),
                None => {
                    self.fatal = Some(ApiError::field(
                        "header",
                        format!("unknown column {name:?}; the columns are {}", COLUMNS.join(", ")),
                    ));
                    return;
                }
            }
        }
        if columns[0].is_none() {
            self.fatal = Some(ApiError::field("header", "a phone column is required"));
            return;
        }
        self.columns = Some(columns);
        self.width = fields.len();
    }

    async fn flush_if_full(&mut self, tx: &mut Transaction<'_, Postgres>) -> Result<(), ApiError> {
        if let Some(fatal) = self.fatal.take() {
            return Err(fatal);
        }
        if self.pending.len() >= ROWS_PER_BATCH {
            self.write(tx).await?;
        }
        Ok(())
    }

    async fn finish(&mut self, tx: &mut Transaction<'_, Postgres>) -> Result<(), ApiError> {
        if let Some(fatal) = self.fatal.take() {
            return Err(fatal);
        }
        if !self.errors.is_empty() {
            return Err(std::mem::take(&mut self.errors).into_error());
        }
        if self.columns.is_none() || self.rows == 0 {
            return Err(ApiError::field("body", "no customers in the upload"));
        }
        self.write(tx).await
    }

    /// Upserts the pending rows by phone. A phone twice in one statement would be an error in Postgres,
    /// so within a batch the later row wins, as it would across batches.
    async fn write(&mut self, tx: &mut Transaction<'_, Postgres>) -> Result<(), ApiError> {
        if !self.errors.is_empty() || self.pending.is_empty() {
            self.pending.clear();
            return Ok(());
        }
        let mut latest: HashMap<String, usize> = HashMap::with_capacity(self.pending.len());
        for (index, customer) in self.pending.iter().enumerate() {
            latest.insert(customer.phone.clone(), index);
        }
        let rows: Vec<&NewCustomer> = self
            .pending
            .iter()
            .enumerate()
            .filter(|(i, c)| latest.get(&c.phone) == Some(i))
            .map(|(_, c)| c)
            .collect();
        let rows: Vec<customers::NewCustomer<'_>> = rows.iter().map(|c| c.as_row()).collect();
        let inserted = customers::upsert(tx, &rows).await.map_err(taken)?;
        let new = inserted.iter().filter(|i| **i).count() as u64;
        self.inserted += new;
        self.updated += inserted.len() as u64 - new;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each record as its line and fields, or its error, read as the import reads them.
    fn records(chunks: &[&str]) -> Vec<Result<(u64, Vec<String>), String>> {
        let mut out = Vec::new();
        CsvReader::read_all(chunks.iter().map(|chunk| chunk.as_bytes()), |read| {
            out.push(read.map(|r| (r.line(), r.fields().map(String::from).collect())).map_err(|e| e.message))
        });
        out
    }

    /// Runs the records of `text` through an import, without writing.
    fn import(text: &str) -> Import {
        let mut import = Import::default();
        CsvReader::read_all([text.as_bytes()], |record| import.record(record));
        import
    }

    #[test]
    fn records_are_read_across_chunks_with_quotes_and_newlines() {
        let long = "x".repeat(10_000);
        let text =
            format!("phone,first_name\r\n+6281,\"Siti, \"\"S\"\"\"\n+6282,\"two\nlines\"\n\n+6283,{long}");
        let whole = records(&[&text]);
        let bytes: Vec<String> = text.chars().map(String::from).collect();
        let split = records(&bytes.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(whole, split, "chunking does not matter");
        let expected: Vec<Result<(u64, Vec<String>), String>> = vec![
            Ok((1, vec!["phone".into(), "first_name".into()])),
            Ok((2, vec!["+6281".into(), "Siti, \"S\"".into()])),
            Ok((3, vec!["+6282".into(), "two\nlines".into()])),
            Ok((6, vec!["+6283".into(), long])),
        ];
        assert_eq!(whole, expected, "the blank line is skipped");
    }

    #[test]
    fn rows_are_checked_and_numbered() {
        let import = import("Phone,first_name,email\n+6281234567,Ani,\n081234,Budi,x\n+6281234568,Citra\n");
        assert_eq!(import.rows, 3);
        // The good row before the first bad one waits; `write` drops it once there are errors.
        assert_eq!(import.pending.len(), 1);
        let errors = import.errors.listed();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["line 3", "line 4"]);
        assert!(errors[0].message.contains("phone: must be in E.164"), "{errors:?}");
        assert!(errors[0].message.contains("email"));
        assert_eq!(errors[1].message, "has 2 fields; the header has 3");
    }

    #[test]
    fn a_row_is_numbered_by_the_line_it_starts_on() {
        let import = import("phone,first_name\n+6281234567,\"Ani\nand\nBudi\"\n\n0812,Citra\n");
        let fields: Vec<&str> = import.errors.listed().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["line 6"], "lines 2-4 are one row, line 5 is blank");
    }

    #[test]
    fn a_nul_in_a_row_is_reported_with_its_row_and_column() {
        let import = import("phone,first_name,location\n+6281234567,Ani,\n+6281234568,B\0di,x\0\n");
        let errors: Vec<(&str, &str)> =
            import.errors.listed().iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(
            errors,
            [(
                "line 3",
                "first_name: must not contain the NUL character; location: must not contain the NUL character"
            )]
        );
    }

    #[test]
    fn the_header_must_name_known_columns_and_a_phone() {
        for header in ["name,phone", "first_name", "phone,phone"] {
            assert!(import(header).fatal.is_some(), "{header}");
        }
        assert!(import("\u{feff}Phone\r\n+6281234567\r\n").fatal.is_none(), "a BOM is not part of the name");
    }
}
