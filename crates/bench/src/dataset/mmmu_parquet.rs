//! MMMU/MMMU's parquet files as the Hugging Face repository stores them (feature `parquet`):
//! one file (`Math/test-00000-of-00001.parquet`) or the repository's folder, whose
//! `Math/test-*.parquet` shards are read in name order. Only `question` and `image_1` are
//! decoded (the other six image columns are projected away); `image_1` is the `datasets`
//! Image feature, a struct of `bytes` (the encoded picture) and `path`.
//!
//! Read through the parquet crate's row API, without arrow: the files are small (the Math test
//! split is a few hundred rows) and read once, before the run. Codecs: uncompressed and
//! snappy (what `datasets` writes); zstd would add a C build (docs/PERFORMANCE.md, "Build"),
//! so a zstd file is refused with a hint to recompress it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::Type;

use crate::error::{BenchError, Result};

/// The codecs this build decodes (the parquet crate's features that loupe-bench turns on).
const CODECS: &str = "uncompressed and snappy";

/// One row: its question and its `image_1` bytes (None: the row has no image).
pub struct MmmuRow {
    pub question: String,
    pub image_1: Option<Vec<u8>>,
}

/// The files to read: `path` itself, or a folder's `Math/test-*.parquet` (the repository's
/// layout) or, when it is the `Math` folder itself, its `test-*.parquet`.
pub fn files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let shards = |dir: &Path| -> Result<Vec<PathBuf>> {
        let mut v = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
            Err(e) => return Err(BenchError::io(dir.display(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| BenchError::io(dir.display(), e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("test-") && name.ends_with(".parquet") {
                v.push(entry.path());
            }
        }
        v.sort();
        Ok(v)
    };
    let mut found = shards(&path.join("Math"))?;
    if found.is_empty() {
        found = shards(path)?;
    }
    if found.is_empty() {
        return Err(BenchError::Dataset {
            path: path.display().to_string(),
            message: "a folder without Math/test-*.parquet (the layout of the MMMU/MMMU \
                      repository; or give the .parquet file itself)"
                .into(),
        });
    }
    Ok(found)
}

fn bad(file: &Path, message: impl Into<String>) -> BenchError {
    BenchError::Dataset {
        path: file.display().to_string(),
        message: message.into(),
    }
}

/// What the parquet crate said, with a hint when it is a codec this build lacks.
fn explain(e: parquet::errors::ParquetError) -> String {
    let text = e.to_string();
    if text.contains("Disabled feature") || text.contains("not supported") {
        format!("{text} (loupe reads {CODECS} parquet; recompress the file with one of those)")
    } else {
        text
    }
}

fn parquet_error(file: &Path, what: &str, e: parquet::errors::ParquetError) -> BenchError {
    bad(file, format!("{what}: {}", explain(e)))
}

/// Feed every row of `file` to `each`. A row whose columns do not fit MMMU's, or that `each`
/// rejects (`Err(why)`), is an error naming the file, the row (from 1, in file order) and the
/// column, or with `skip_bad` a skip counted in `notes`. An error from the parquet reader
/// itself ends the read with an error naming the file and the row it stopped at, skip or not.
pub fn each_row(
    file: &Path,
    skip_bad: bool,
    notes: &mut Vec<String>,
    mut each: impl FnMut(MmmuRow) -> std::result::Result<(), String>,
) -> Result<()> {
    let f = std::fs::File::open(file).map_err(|e| BenchError::io(file.display(), e))?;
    let reader = SerializedFileReader::new(f)
        .map_err(|e| parquet_error(file, "not a readable parquet file", e))?;
    let schema = reader.metadata().file_metadata().schema();
    let column = |name: &str| -> Result<Arc<Type>> {
        schema
            .get_fields()
            .iter()
            .find(|t| t.name() == name)
            .cloned()
            .ok_or_else(|| {
                let have: Vec<&str> = schema.get_fields().iter().map(|t| t.name()).collect();
                bad(
                    file,
                    format!(
                        "no column `{name}` (MMMU/MMMU has question and image_1; this file has \
                         {})",
                        have.join(", ")
                    ),
                )
            })
    };
    let projection = Type::group_type_builder(schema.name())
        .with_fields(vec![column("question")?, column("image_1")?])
        .build()
        .map_err(|e| parquet_error(file, "projecting question and image_1", e))?;
    let rows = reader
        .get_row_iter(Some(projection))
        .map_err(|e| parquet_error(file, "reading question and image_1", e))?;
    let mut skipped = Vec::new();
    for (i, row) in rows.enumerate() {
        let n = i + 1;
        // An error from the reader itself (a page that does not decode, a codec this build
        // lacks) is the file's, not the row's: the reader cannot go past it (it would give the
        // same error again), and the rows after it would be misaligned, so it ends the read
        // whatever --skip-bad-lines says.
        let row = row.map_err(|e| {
            bad(
                file,
                format!(
                    "reading row {n}: {} (the file is damaged or written with a codec this                      build lacks; --skip-bad-lines skips only rows that decode but do not                      fit)",
                    explain(e)
                ),
            )
        })?;
        let verdict = mmmu_row(&row).and_then(&mut each);
        match verdict {
            Ok(()) => {}
            Err(why) if skip_bad => skipped.push(format!("{n} ({why})")),
            Err(why) => {
                return Err(bad(
                    file,
                    format!("row {n}: {why} (--skip-bad-lines skips such rows and counts them)"),
                ));
            }
        }
    }
    if !skipped.is_empty() {
        let shown: Vec<&str> = skipped.iter().take(5).map(String::as_str).collect();
        notes.push(format!(
            "{}: skipped {} bad row{}: {}{}",
            file.display(),
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if skipped.len() > 5 { ", ..." } else { "" }
        ));
    }
    Ok(())
}

fn kind(f: &Field) -> &'static str {
    match f {
        Field::Null => "null",
        Field::Bool(_) => "a boolean",
        Field::Str(_) => "a string",
        Field::Bytes(_) => "bytes",
        Field::Group(_) => "a struct",
        Field::ListInternal(_) => "a list",
        Field::MapInternal(_) => "a map",
        _ => "a number or a date",
    }
}

fn get<'r>(row: &'r Row, name: &str) -> Option<&'r Field> {
    row.get_column_iter()
        .find(|(k, _)| k.as_str() == name)
        .map(|(_, v)| v)
}

fn mmmu_row(row: &Row) -> std::result::Result<MmmuRow, String> {
    let question = match get(row, "question") {
        Some(Field::Str(s)) => s.clone(),
        Some(Field::Bytes(b)) => std::str::from_utf8(b.data())
            .map_err(|_| "column question: not UTF-8 text".to_string())?
            .to_string(),
        Some(other) => return Err(format!("column question: {}, not a string", kind(other))),
        None => return Err("column question: missing".into()),
    };
    let image_1 = match get(row, "image_1") {
        None | Some(Field::Null) => None,
        Some(Field::Group(img)) => match (get(img, "bytes"), get(img, "path")) {
            (Some(Field::Bytes(b)), _) => Some(b.data().to_vec()),
            (None | Some(Field::Null), None | Some(Field::Null)) => None,
            (None | Some(Field::Null), Some(Field::Str(p))) => {
                return Err(format!(
                    "column image_1: no bytes, only the path {p:?} (the repository's files \
                     carry the bytes)"
                ));
            }
            (Some(other), _) => {
                return Err(format!("column image_1.bytes: {}, not bytes", kind(other)));
            }
            (_, Some(other)) => {
                return Err(format!(
                    "column image_1.path: {}, not a string",
                    kind(other)
                ));
            }
        },
        Some(other) => {
            return Err(format!(
                "column image_1: {}, not a struct of bytes and path",
                kind(other)
            ));
        }
    };
    Ok(MmmuRow { question, image_1 })
}

/// The repository's schema (every column `datasets` writes for MMMU/MMMU, all nullable).
const SCHEMA: &str = "message schema {
  optional binary id (STRING);
  optional binary question (STRING);
  optional binary options (STRING);
  optional binary explanation (STRING);
  optional group image_1 { optional binary bytes; optional binary path (STRING); }
  optional group image_2 { optional binary bytes; optional binary path (STRING); }
  optional group image_3 { optional binary bytes; optional binary path (STRING); }
  optional group image_4 { optional binary bytes; optional binary path (STRING); }
  optional group image_5 { optional binary bytes; optional binary path (STRING); }
  optional group image_6 { optional binary bytes; optional binary path (STRING); }
  optional group image_7 { optional binary bytes; optional binary path (STRING); }
  optional binary img_type (STRING);
  optional binary answer (STRING);
  optional binary topic_difficulty (STRING);
  optional binary question_type (STRING);
  optional binary subfield (STRING);
}";

/// Write `rows` as one snappy-compressed file in the repository's schema and column order:
/// `image_1` as `{bytes, path: null}` (null for a row without one), `image_2`..`image_7`
/// null, the other text columns filled in (`id` is `test_Math_{n}`). A sample of the real
/// layout, for tests and for trying the reader on a few hand-made rows.
pub fn write_sample(path: &Path, rows: &[MmmuRow]) -> Result<()> {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;

    let err = |e: parquet::errors::ParquetError| bad(path, e.to_string());
    let schema = Arc::new(parquet::schema::parser::parse_message_type(SCHEMA).map_err(err)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).map_err(|e| BenchError::io(path.display(), e))?;
    let mut w = SerializedFileWriter::new(file, schema, props).map_err(err)?;
    let names: Vec<String> = w
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.path().string())
        .collect();
    let mut group = w.next_row_group().map_err(err)?;
    let mut names = names.into_iter();
    while let Some(mut col) = group.next_column().map_err(err)? {
        let name = names.next().unwrap_or_default();
        // Each row's definition level and value: 1 a value, 0 null at the top; in an image
        // struct 2 a value, 1 a null field of a present struct, 0 no struct.
        let (defs, values): (Vec<i16>, Vec<Option<ByteArray>>) = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let text = |s: String| (1, Some(ByteArray::from(s.into_bytes())));
                match name.as_str() {
                    "id" => text(format!("test_Math_{}", i + 1)),
                    "question" => text(r.question.clone()),
                    "options" => text("['1', '2', '3', '4']".into()),
                    "explanation" => text(String::new()),
                    "image_1.bytes" => match &r.image_1 {
                        Some(b) => (2, Some(ByteArray::from(b.clone()))),
                        None => (0, None),
                    },
                    "image_1.path" => (i16::from(r.image_1.is_some()), None),
                    n if n.starts_with("image_") => (0, None),
                    "img_type" => text("['Diagrams']".into()),
                    "answer" => text("?".into()),
                    "topic_difficulty" => text("Medium".into()),
                    "question_type" => text("multiple-choice".into()),
                    _ => text("Geometry".into()),
                }
            })
            .unzip();
        let values: Vec<ByteArray> = values.into_iter().flatten().collect();
        col.typed::<ByteArrayType>()
            .write_batch(&values, Some(&defs), None)
            .map_err(err)?;
        col.close().map_err(err)?;
    }
    group.close().map_err(err)?;
    w.close().map_err(err)?;
    Ok(())
}
