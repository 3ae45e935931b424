//! `amanah import`: bulk import of subjects from CSV or JSON Lines, all or nothing.
//!
//! A reader thread parses the file into chunks of rows; the vault validates and encrypts them
//! on worker threads and the store writes them in one transaction. Messages name the file, the
//! line and the category, never a value.

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amanah_vault::{act, ImportOptions, ImportOutcome, ImportRow, Permit, RowError, Vault};
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// Rows per chunk handed to the vault.
const CHUNK: usize = 2_048;
/// Problems printed; the rest are counted.
const MAX_SHOWN: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// From the file name: `.csv`, or `.jsonl` / `.ndjson`.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

type Chunk = Vec<std::result::Result<ImportRow, RowError>>;

/// Runs an import and prints its report; exit 1 (nothing written) if any row is bad.
pub async fn run(
    vault: &Vault,
    permit: &Permit<act::SubjectImport>,
    purpose: &str,
    file: &Path,
    format: Option<Format>,
) -> Result<ExitCode> {
    let format = match format.or_else(|| Format::from_path(file)) {
        Some(f) => f,
        None => bail!(
            "{}: cannot tell the format from the file name: use a .csv or .jsonl file, or --format",
            file.display()
        ),
    };
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let started = Instant::now();
    let progress = progress_bar();
    let bar = progress.clone();
    let options = ImportOptions {
        progress: Some(Arc::new(move |n| bar.set_position(n))),
        ..ImportOptions::default()
    };
    let outcome = import_reader(
        vault,
        permit,
        purpose,
        BufReader::new(input),
        format,
        options,
    )
    .await;
    progress.finish_and_clear();
    let outcome = outcome?;
    let name = file.display();
    if !outcome.rejected.is_empty() {
        for r in outcome.rejected.iter().take(MAX_SHOWN) {
            eprintln!("{}", render(&name.to_string(), r));
        }
        if outcome.rejected.len() > MAX_SHOWN {
            eprintln!(
                "{name}: {} more problems not shown",
                outcome.rejected.len() - MAX_SHOWN
            );
        }
        let lines = {
            let mut l: Vec<u64> = outcome.rejected.iter().map(|r| r.line).collect();
            l.dedup();
            l.len()
        };
        eprintln!("error: {lines} bad rows in {name}; nothing was imported");
        return Ok(ExitCode::FAILURE);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {} subjects from {name} in {secs:.2} s ({:.0} rows/s)",
        outcome.imported,
        outcome.imported as f64 / secs.max(1e-9)
    );
    let flushing = Instant::now();
    vault.flush().await?;
    println!(
        "copied the write-ahead log into the database in {:.2} s",
        flushing.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `FILE:LINE: category: message` (or `FILE:LINE: message` for a row-level problem).
pub fn render(file: &str, r: &RowError) -> String {
    match &r.category {
        Some(c) => format!("{file}:{}: {c}: {}", r.line, r.message),
        None => format!("{file}:{}: {}", r.line, r.message),
    }
}

fn progress_bar() -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {pos} rows  {per_sec}  {elapsed}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Imports from any reader (the file, or generated rows in `amanah bench`).
pub async fn import_reader<R: BufRead + Send + 'static>(
    vault: &Vault,
    permit: &Permit<act::SubjectImport>,
    purpose: &str,
    input: R,
    format: Format,
    options: ImportOptions,
) -> Result<ImportOutcome> {
    let columns = {
        let active = vault.policy();
        let policy = &active.policy;
        let Some(p) = policy.purposes.get(purpose) else {
            bail!("the policy has no purpose {purpose:?}");
        };
        p.categories.clone()
    };
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    let reader = std::thread::Builder::new()
        .name("amanah-import-reader".into())
        .spawn(move || match format {
            Format::Csv => read_csv(input, &columns, &tx),
            Format::Jsonl => read_jsonl(input, &tx),
        })
        .context("cannot start the reader thread")?;
    let outcome = vault.import_subjects(permit, purpose, rx, options).await;
    let header = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader thread failed"))?;
    let mut outcome = outcome?;
    if let Err(e) = header {
        // A bad header stops the reader before any row: nothing was sent, nothing written.
        outcome.imported = 0;
        outcome.rejected.insert(0, e);
    }
    Ok(outcome)
}

/// Sends rows of a CSV file whose header names categories. An empty cell is an absent field.
/// Returns an error for a bad header (then no row is sent).
fn read_csv<R: BufRead>(
    input: R,
    columns: &[String],
    tx: &mpsc::Sender<Chunk>,
) -> std::result::Result<(), RowError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let header_error = |message: String| RowError {
        line: 1,
        category: None,
        message,
    };
    let headers: Vec<String> = csv
        .headers()
        .map_err(|e| header_error(format!("cannot read the CSV header: {}", csv_error(&e))))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    for (i, h) in headers.iter().enumerate() {
        if !columns.contains(h) {
            return Err(header_error(format!(
                "column {} ({h:?}) is not a category of the purpose",
                i + 1
            )));
        }
        if headers[..i].contains(h) {
            return Err(header_error(format!("column {h:?} appears twice")));
        }
    }
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut record = csv::StringRecord::new();
    loop {
        let line = csv.position().line();
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                let mut fields = Map::new();
                for (h, v) in headers.iter().zip(record.iter()) {
                    if !v.trim().is_empty() {
                        fields.insert(h.clone(), Value::String(v.to_owned()));
                    }
                }
                chunk.push(Ok(ImportRow { line, fields }));
            }
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                chunk.push(Err(RowError {
                    line,
                    category: None,
                    message: csv_error(&e),
                }));
                if !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    break; // I/O or encoding: the rest cannot be trusted
                }
            }
        }
        if chunk.len() == CHUNK && tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
            return Ok(());
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(chunk);
    }
    Ok(())
}

/// A CSV error without the record's content.
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the row has {len} cells, the header {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".into(),
        csv::ErrorKind::Io(e) => format!("read error: {e}"),
        _ => "malformed CSV".into(),
    }
}

/// Sends one row per non-blank line, each a JSON object of category -> value.
fn read_jsonl<R: BufRead>(input: R, tx: &mpsc::Sender<Chunk>) -> std::result::Result<(), RowError> {
    let mut chunk = Vec::with_capacity(CHUNK);
    for (i, line) in input.lines().enumerate() {
        let n = i as u64 + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                chunk.push(Err(RowError {
                    line: n,
                    category: None,
                    message: format!("read error: {}", e.kind()),
                }));
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        // Parse to a Value first: serde's type errors would quote the offending value.
        let row = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(fields)) => Ok(ImportRow { line: n, fields }),
            Ok(_) => Err(RowError {
                line: n,
                category: None,
                message: "the line is not a JSON object".into(),
            }),
            Err(e) => Err(RowError {
                line: n,
                category: None,
                message: format!("invalid JSON at column {}", e.column()),
            }),
        };
        chunk.push(row);
        if chunk.len() == CHUNK && tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
            return Ok(());
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(chunk);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_extension() {
        assert_eq!(Format::from_path(Path::new("a.csv")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("a.CSV")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("a.jsonl")), Some(Format::Jsonl));
        assert_eq!(
            Format::from_path(Path::new("a.ndjson")),
            Some(Format::Jsonl)
        );
        assert_eq!(Format::from_path(Path::new("a.txt")), None);
        assert_eq!(Format::from_path(Path::new("a")), None);
    }

    #[test]
    fn rendering_names_file_line_and_category() {
        let r = RowError {
            line: 7,
            category: Some("email".into()),
            message: "must be a valid email address".into(),
        };
        assert_eq!(
            render("in.csv", &r),
            "in.csv:7: email: must be a valid email address"
        );
        let r = RowError {
            line: 3,
            category: None,
            message: "the line is not a JSON object".into(),
        };
        assert_eq!(
            render("in.jsonl", &r),
            "in.jsonl:3: the line is not a JSON object"
        );
    }
}
