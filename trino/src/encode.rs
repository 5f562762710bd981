//! Arrow record batches → Trino JSON rows (`data` of a result page).
//!
//! Values follow Trino's client protocol: integers and doubles as JSON
//! numbers (`"NaN"`, `"Infinity"`, `"-Infinity"` as strings), decimals as
//! strings, `date` as `"2024-01-02"`, `time(p)` / `timestamp(p)` with
//! exactly `p` fractional digits, `timestamp(p) with time zone` followed by
//! the zone (`UTC` or `+02:00`), varbinary as base64, arrays as JSON arrays,
//! maps as objects (keys as strings), rows as positional arrays.
//!
//! Each batch gets one writer per column, chosen once from the column's
//! type; rows are then written straight into the page's bytes. Every
//! writer emits ASCII or whole UTF-8 strings, so a page is valid UTF-8 by
//! construction. The hot writers (integers, doubles, strings, decimals,
//! timestamps) fill a small stack buffer with a two-digit table and append
//! it once: the Trino encoder is meant to keep up with the scan (≥ 10 M
//! rows/s per core on the `orders` shape, `cargo bench -p sluice-trino`).

use std::io::Write as _;
use std::str::FromStr;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, GenericBinaryArray,
    GenericStringArray, PrimitiveArray, RecordBatch,
};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Decimal32Type, Decimal64Type,
    Decimal128Type, Decimal256Type, DecimalType, Float16Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::Engine as _;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, NaiveTime, Timelike};

type Writer<'a> = Box<dyn Fn(&mut Vec<u8>, usize) + 'a>;

/// Appends rows `[start, start + n)` of `batch` to `out` as comma-separated
/// JSON arrays (`[1,"a"],[2,"b"]`), stopping early once `out` holds
/// `max_bytes` (at least one row is written). `first` tells whether the
/// page is still empty (no leading comma). Returns the number of rows
/// written.
pub fn write_rows(
    batch: &RecordBatch,
    start: usize,
    n: usize,
    out: &mut Vec<u8>,
    max_bytes: usize,
    mut first: bool,
) -> Result<usize, ArrowError> {
    let prepared: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(prepare)
        .collect::<Result<_, _>>()?;
    let writers: Vec<Writer<'_>> = prepared
        .iter()
        .map(|a| writer(a.as_ref()))
        .collect::<Result<_, _>>()?;
    let end = (start + n).min(batch.num_rows());
    let mut written = 0;
    // Room for a row like the last one, so the pushes inside rarely grow.
    let mut row_bytes = 64;
    for row in start..end {
        out.reserve(row_bytes);
        let before = out.len();
        if !first {
            out.push(b',');
        }
        first = false;
        out.push(b'[');
        for (i, w) in writers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            w(out, row);
        }
        out.push(b']');
        row_bytes = out.len() - before;
        written += 1;
        if out.len() >= max_bytes {
            break;
        }
    }
    Ok(written)
}

/// Casts columns without a direct Trino encoding: dictionaries to their
/// values.
fn prepare(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    match array.data_type() {
        DataType::Dictionary(_, v) => arrow::compute::cast(array, v),
        _ => Ok(std::sync::Arc::clone(array)),
    }
}

fn nullable<'a>(array: &'a dyn Array, f: impl Fn(&mut Vec<u8>, usize) + 'a) -> Writer<'a> {
    if array.null_count() == 0 {
        Box::new(f)
    } else {
        Box::new(move |out, i| {
            if array.is_null(i) {
                out.extend_from_slice(b"null");
            } else {
                f(out, i)
            }
        })
    }
}

fn ints<'a, T>(array: &'a dyn Array) -> Writer<'a>
where
    T: ArrowPrimitiveType,
    T::Native: itoa::Integer,
{
    let a: &PrimitiveArray<T> = array.as_primitive();
    nullable(array, move |out, i| {
        out.extend_from_slice(itoa::Buffer::new().format(a.value(i)).as_bytes());
    })
}

// Doubles: shortest round-trip digits (zmij, the Schubfach/yy successor of
// ryu, about twice as fast on full-precision values).
fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

fn write_f32(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        write_f64(out, f64::from(v));
    }
}

fn decimals<'a, T>(array: &'a dyn Array, p: u8, s: i8) -> Writer<'a>
where
    T: DecimalType,
{
    let a: &PrimitiveArray<T> = array.as_primitive();
    nullable(array, move |out, i| {
        out.push(b'"');
        out.extend_from_slice(T::format_decimal(a.value(i), p, s).as_bytes());
        out.push(b'"');
    })
}

/// An unscaled decimal `v` with `scale` fractional digits (`12345`, 2 →
/// `123.45`; `-5`, 2 → `-0.05`).
fn write_decimal(out: &mut Vec<u8>, v: i128, scale: usize) {
    if v < 0 {
        out.push(b'-');
    }
    // Most decimals fit 64 bits, whose formatting is several times
    // cheaper than 128-bit division.
    let mut buf = itoa::Buffer::new();
    let magnitude = v.unsigned_abs();
    let digits = match u64::try_from(magnitude) {
        Ok(small) => buf.format(small),
        Err(_) => buf.format(magnitude),
    }
    .as_bytes();
    if scale == 0 {
        out.extend_from_slice(digits);
        return;
    }
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    } else {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + scale - digits.len(), b'0');
        out.extend_from_slice(digits);
    }
}

/// Appends `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Most text needs no escaping: one vectorisable scan, one copy.
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(esc);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Whether `bytes` hold a character JSON strings escape. Blocks of 16 are
/// tested without an early exit inside, so the compiler vectorises them.
fn needs_escape(bytes: &[u8]) -> bool {
    let special = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |any, &b| any | special(b)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| special(b))
}

/// `00` … `99`: two digits per lookup.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The two decimal digits of `v % 100`.
fn two(v: u32) -> [u8; 2] {
    let i = (v % 100) as usize * 2;
    [PAIRS[i], PAIRS[i + 1]]
}

/// `YYYY-MM-DD` of a date in years 0..=9999.
fn date_text(d: chrono::NaiveDate) -> Option<[u8; 10]> {
    let y = u32::try_from(d.year()).ok().filter(|y| *y <= 9999)?;
    let [y0, y1] = two(y / 100);
    let [y2, y3] = two(y);
    let [m0, m1] = two(d.month());
    let [d0, d1] = two(d.day());
    Some([y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1])
}

fn write_date(out: &mut Vec<u8>, d: chrono::NaiveDate) {
    match date_text(d) {
        Some(text) => out.extend_from_slice(&text),
        None => {
            let _ = write!(out, "{}", d.format("%Y-%m-%d"));
        }
    }
}

/// `HH:MM:SS[.f…]` of a time of day in seconds and nanoseconds, with
/// exactly `digits` (0..=9) fractional digits.
fn write_clock(out: &mut Vec<u8>, of_day: u32, nanos: u32, digits: u8) {
    let (h, m, s) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let [h0, h1] = two(h);
    let [m0, m1] = two(m);
    let [s0, s1] = two(s);
    let mut buf = [
        h0, h1, b':', m0, m1, b':', s0, s1, b'.', 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    if digits == 0 {
        out.extend_from_slice(&buf[..8]);
        return;
    }
    // Leap-second nanos (≥ 1e9) stay in range of 9 digits after the modulo.
    let nanos = nanos % 1_000_000_000;
    let low = nanos % 100_000_000;
    buf[9] = b'0' + (nanos / 100_000_000) as u8;
    buf[10..12].copy_from_slice(&two(low / 1_000_000));
    buf[12..14].copy_from_slice(&two(low / 10_000));
    buf[14..16].copy_from_slice(&two(low / 100));
    buf[16..18].copy_from_slice(&two(low));
    out.extend_from_slice(&buf[..9 + usize::from(digits.min(9))]);
}

/// `HH:MM:SS[.f…]` with exactly `digits` fractional digits.
fn write_time(out: &mut Vec<u8>, t: NaiveTime, digits: u8) {
    write_clock(
        out,
        t.num_seconds_from_midnight() % 86_400,
        t.nanosecond(),
        digits,
    );
}

fn write_datetime(out: &mut Vec<u8>, dt: NaiveDateTime, digits: u8) {
    write_date(out, dt.date());
    out.push(b' ');
    write_time(out, dt.time(), digits);
}

fn digits_of(unit: &TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// Ticks of `unit` in a second.
fn per_second(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// Whole seconds and nanoseconds of `v` ticks (`per_sec` a second),
/// rounded down so instants before the epoch keep positive nanoseconds.
fn split_ticks(v: i64, per_sec: i64) -> (i64, u32) {
    let nanos = v.rem_euclid(per_sec) * (1_000_000_000 / per_sec);
    (v.div_euclid(per_sec), nanos as u32)
}

/// The offset and the label of an Arrow timestamp's time zone. Zones other
/// than UTC and fixed offsets are shown as the same instant in UTC.
fn zone(tz: &str) -> (FixedOffset, String) {
    let utc = FixedOffset::east_opt(0).expect("zero offset");
    if matches!(
        tz.to_ascii_uppercase().as_str(),
        "UTC" | "Z" | "ETC/UTC" | "GMT" | "+00:00" | "+0000" | "+00" | "-00:00"
    ) {
        return (utc, "UTC".to_string());
    }
    match arrow::array::timezone::Tz::from_str(tz) {
        Ok(parsed) => {
            let offset = chrono::TimeZone::offset_from_utc_datetime(
                &parsed,
                &DateTime::UNIX_EPOCH.naive_utc(),
            );
            let fixed = chrono::Offset::fix(&offset);
            (fixed, tz.to_string())
        }
        Err(_) => (utc, "UTC".to_string()),
    }
}

fn timestamps<'a, T: ArrowPrimitiveType<Native = i64>>(
    array: &'a dyn Array,
    unit: &TimeUnit,
    tz: Option<&str>,
) -> Writer<'a> {
    let a: &PrimitiveArray<T> = array.as_primitive();
    let digits = digits_of(unit);
    let per_sec = per_second(unit);
    let zone = tz.map(zone);
    let offset = zone
        .as_ref()
        .map_or(0, |(offset, _)| i64::from(offset.local_minus_utc()));
    // Rows of a batch are often on the same day: its date is formatted once.
    let day: std::cell::Cell<Option<(i64, [u8; 10])>> = std::cell::Cell::new(None);
    nullable(array, move |out, i| {
        let v = a.value(i);
        let (secs, nanos) = split_ticks(v, per_sec);
        out.push(b'"');
        if let Some(local) = secs.checked_add(offset)
            && write_fast_datetime(out, local, nanos, digits, &day)
        {
            if let Some((_, label)) = &zone {
                out.push(b' ');
                out.extend_from_slice(label.as_bytes());
            }
            out.push(b'"');
            return;
        }
        match DateTime::from_timestamp(secs, nanos) {
            Some(utc) => match &zone {
                Some((offset, label)) => {
                    write_datetime(out, utc.with_timezone(offset).naive_local(), digits);
                    out.push(b' ');
                    out.extend_from_slice(label.as_bytes());
                }
                None => write_datetime(out, utc.naive_utc(), digits),
            },
            None => {
                let _ = write!(out, "{v}");
            }
        }
        out.push(b'"');
    })
}

/// `YYYY-MM-DD HH:MM:SS[.f…]` of `secs` since the epoch (local time), the
/// date taken from `day` when it is the same day. False (nothing written)
/// for years outside 0..=9999.
fn write_fast_datetime(
    out: &mut Vec<u8>,
    secs: i64,
    nanos: u32,
    digits: u8,
    day: &std::cell::Cell<Option<(i64, [u8; 10])>>,
) -> bool {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400) as u32;
    let date = match day.get() {
        Some((d, text)) if d == days => text,
        _ => {
            let Some(text) = i32::try_from(days)
                .ok()
                .and_then(|d| d.checked_add(719_163))
                .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
                .and_then(date_text)
            else {
                return false;
            };
            day.set(Some((days, text)));
            text
        }
    };
    out.extend_from_slice(&date);
    out.push(b' ');
    write_clock(out, of_day, nanos, digits);
    true
}

fn times<'a, T: ArrowPrimitiveType>(array: &'a dyn Array, unit: &TimeUnit) -> Writer<'a>
where
    T::Native: Into<i64>,
{
    let a: &PrimitiveArray<T> = array.as_primitive();
    let digits = digits_of(unit);
    let per_sec = per_second(unit);
    nullable(array, move |out, i| {
        let v: i64 = a.value(i).into();
        let (secs, nanos) = split_ticks(v, per_sec);
        out.push(b'"');
        match u32::try_from(secs).ok().filter(|s| *s < 86_400) {
            Some(s) => write_clock(out, s, nanos, digits),
            None => {
                let _ = write!(out, "{v}");
            }
        }
        out.push(b'"');
    })
}

fn base64_writer<'a>(array: &'a dyn Array, value: impl Fn(usize) -> &'a [u8] + 'a) -> Writer<'a> {
    nullable(array, move |out, i| {
        let bytes = value(i);
        let start = out.len() + 1;
        let encoded = bytes.len().div_ceil(3) * 4;
        out.resize(start + encoded + 1, b'"');
        let _ = base64::engine::general_purpose::STANDARD
            .encode_slice(bytes, &mut out[start..start + encoded]);
    })
}
/// The writer of one column (values are written as Trino encodes them;
/// the caller handles row and column separators).
fn writer(array: &dyn Array) -> Result<Writer<'_>, ArrowError> {
    Ok(match array.data_type() {
        DataType::Null => Box::new(|out: &mut Vec<u8>, _| out.extend_from_slice(b"null")),
        DataType::Boolean => {
            let a: &BooleanArray = array.as_boolean();
            nullable(array, move |out, i| {
                out.extend_from_slice(if a.value(i) { b"true" } else { b"false" })
            })
        }
        DataType::Int8 => ints::<Int8Type>(array),
        DataType::Int16 => ints::<Int16Type>(array),
        DataType::Int32 => ints::<Int32Type>(array),
        DataType::Int64 => ints::<Int64Type>(array),
        DataType::UInt8 => ints::<UInt8Type>(array),
        DataType::UInt16 => ints::<UInt16Type>(array),
        DataType::UInt32 => ints::<UInt32Type>(array),
        DataType::UInt64 => {
            // decimal(20,0): a string.
            let a: &PrimitiveArray<UInt64Type> = array.as_primitive();
            nullable(array, move |out, i| {
                out.push(b'"');
                out.extend_from_slice(itoa::Buffer::new().format(a.value(i)).as_bytes());
                out.push(b'"');
            })
        }
        DataType::Float16 => {
            let a: &PrimitiveArray<Float16Type> = array.as_primitive();
            nullable(array, move |out, i| write_f32(out, a.value(i).to_f32()))
        }
        DataType::Float32 => {
            let a: &PrimitiveArray<Float32Type> = array.as_primitive();
            nullable(array, move |out, i| write_f32(out, a.value(i)))
        }
        DataType::Float64 => {
            let a: &PrimitiveArray<Float64Type> = array.as_primitive();
            nullable(array, move |out, i| write_f64(out, a.value(i)))
        }
        DataType::Utf8 => {
            let a: &GenericStringArray<i32> = array.as_string();
            nullable(array, move |out, i| write_str(out, a.value(i)))
        }
        DataType::LargeUtf8 => {
            let a: &GenericStringArray<i64> = array.as_string();
            nullable(array, move |out, i| write_str(out, a.value(i)))
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            nullable(array, move |out, i| write_str(out, a.value(i)))
        }
        DataType::Decimal32(p, s) => decimals::<Decimal32Type>(array, *p, *s),
        DataType::Decimal64(p, s) => decimals::<Decimal64Type>(array, *p, *s),
        DataType::Decimal128(_, s) if *s >= 0 => {
            let a: &PrimitiveArray<Decimal128Type> = array.as_primitive();
            let scale = *s as usize;
            nullable(array, move |out, i| {
                out.push(b'"');
                write_decimal(out, a.value(i), scale);
                out.push(b'"');
            })
        }
        DataType::Decimal128(p, s) => decimals::<Decimal128Type>(array, *p, *s),
        DataType::Decimal256(p, s) if *p <= crate::types::MAX_DECIMAL_PRECISION => {
            decimals::<Decimal256Type>(array, *p, *s)
        }
        DataType::Date32 => {
            let a: &PrimitiveArray<Date32Type> = array.as_primitive();
            nullable(array, move |out, i| {
                out.push(b'"');
                match arrow::temporal_conversions::as_date::<Date32Type>(i64::from(a.value(i))) {
                    Some(d) => write_date(out, d),
                    None => out.extend_from_slice(b"invalid date"),
                }
                out.push(b'"');
            })
        }
        DataType::Date64 => {
            let a: &PrimitiveArray<Date64Type> = array.as_primitive();
            nullable(array, move |out, i| {
                out.push(b'"');
                match arrow::temporal_conversions::as_date::<Date64Type>(a.value(i)) {
                    Some(d) => write_date(out, d),
                    None => out.extend_from_slice(b"invalid date"),
                }
                out.push(b'"');
            })
        }
        DataType::Timestamp(unit, tz) => {
            let tz = tz.as_deref();
            match unit {
                TimeUnit::Second => timestamps::<TimestampSecondType>(array, unit, tz),
                TimeUnit::Millisecond => timestamps::<TimestampMillisecondType>(array, unit, tz),
                TimeUnit::Microsecond => timestamps::<TimestampMicrosecondType>(array, unit, tz),
                TimeUnit::Nanosecond => timestamps::<TimestampNanosecondType>(array, unit, tz),
            }
        }
        DataType::Time32(unit @ TimeUnit::Second) => times::<Time32SecondType>(array, unit),
        DataType::Time32(unit) => times::<Time32MillisecondType>(array, unit),
        DataType::Time64(unit @ TimeUnit::Microsecond) => {
            times::<Time64MicrosecondType>(array, unit)
        }
        DataType::Time64(unit) => times::<Time64NanosecondType>(array, unit),
        DataType::Binary => {
            let a: &GenericBinaryArray<i32> = array.as_binary();
            base64_writer(array, move |i| a.value(i))
        }
        DataType::LargeBinary => {
            let a: &GenericBinaryArray<i64> = array.as_binary();
            base64_writer(array, move |i| a.value(i))
        }
        DataType::BinaryView => {
            let a = array.as_binary_view();
            base64_writer(array, move |i| a.value(i))
        }
        DataType::FixedSizeBinary(_) => {
            let a: &FixedSizeBinaryArray = array.as_fixed_size_binary();
            base64_writer(array, move |i| a.value(i))
        }
        DataType::List(_) => {
            let a = array.as_list::<i32>();
            nullable(array, move |out, i| write_nested(out, a.value(i).as_ref()))
        }
        DataType::LargeList(_) => {
            let a = array.as_list::<i64>();
            nullable(array, move |out, i| write_nested(out, a.value(i).as_ref()))
        }
        DataType::FixedSizeList(..) => {
            let a = array.as_fixed_size_list();
            nullable(array, move |out, i| write_nested(out, a.value(i).as_ref()))
        }
        DataType::Map(..) => {
            let a = array.as_map();
            nullable(array, move |out, i| {
                let entries = a.value(i);
                let keys = entries.column(0);
                let values = entries.column(1);
                out.push(b'{');
                for j in 0..entries.len() {
                    if j > 0 {
                        out.push(b',');
                    }
                    let mut key = Vec::new();
                    write_value(&mut key, keys.as_ref(), j);
                    if key.starts_with(b"\"") {
                        out.extend_from_slice(&key);
                    } else {
                        write_str(out, &String::from_utf8_lossy(&key));
                    }
                    out.push(b':');
                    write_value(out, values.as_ref(), j);
                }
                out.push(b'}');
            })
        }
        DataType::Struct(_) => {
            let a = array.as_struct();
            nullable(array, move |out, i| {
                out.push(b'[');
                for (j, c) in a.columns().iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_value(out, c.as_ref(), i);
                }
                out.push(b']');
            })
        }
        DataType::Dictionary(..) => {
            return Err(ArrowError::InvalidArgumentError(
                "dictionary arrays are cast before encoding".into(),
            ));
        }
        _ => {
            // varchar: Arrow's display form (intervals, durations, …).
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            nullable(array, move |out, i| {
                write_str(out, &formatter.value(i).to_string())
            })
        }
    })
}

/// A JSON array of all values of `array`.
fn write_nested(out: &mut Vec<u8>, array: &dyn Array) {
    out.push(b'[');
    for i in 0..array.len() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, array, i);
    }
    out.push(b']');
}

/// One value of a nested array (slow path: a writer per value).
fn write_value(out: &mut Vec<u8>, array: &dyn Array, i: usize) {
    if array.is_null(i) {
        out.extend_from_slice(b"null");
        return;
    }
    let owned;
    let array = match array.data_type() {
        DataType::Dictionary(_, v) => {
            owned = arrow::compute::cast(&array.slice(i, 1), v);
            match &owned {
                Ok(a) => return write_value(out, a.as_ref(), 0),
                Err(e) => {
                    write_str(out, &e.to_string());
                    return;
                }
            }
        }
        _ => array,
    };
    match writer(array) {
        Ok(w) => w(out, i),
        Err(e) => write_str(out, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BinaryArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int32Array,
        Int64Array, ListArray, MapBuilder, StringArray, StringBuilder, StructArray,
        Time64MicrosecondArray, TimestampMicrosecondArray, TimestampNanosecondArray,
    };
    use arrow::datatypes::{Field, Int32Type, Schema};

    use super::*;

    fn encode(columns: Vec<(&str, ArrayRef)>) -> String {
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        let batch =
            RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|c| c.1).collect())
                .unwrap();
        let mut out = Vec::new();
        let n = write_rows(&batch, 0, batch.num_rows(), &mut out, usize::MAX, true).unwrap();
        assert_eq!(n, batch.num_rows());
        format!("[{}]", String::from_utf8(out).unwrap())
    }

    #[test]
    fn scalars() {
        let json = encode(vec![
            ("i", Arc::new(Int64Array::from(vec![Some(-1), None]))),
            (
                "d",
                Arc::new(Float64Array::from(vec![f64::NAN, f64::NEG_INFINITY])),
            ),
            (
                "r",
                Arc::new(Float32Array::from(vec![1.1f32, f32::INFINITY])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![Some("a\"b\\\n\u{1}é"), None])),
            ),
            (
                "dec",
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), Some(-5)])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
            (
                "b",
                Arc::new(BinaryArray::from(vec![&b"\xca\xfe"[..], b""])),
            ),
        ]);
        assert_eq!(
            json,
            r#"[[-1,"NaN",1.1,"a\"b\\\n\u0001é","123.45","yv4="],[null,"-Infinity","Infinity",null,"-0.05",""]]"#
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0][3], "a\"b\\\n\u{1}é");
    }

    #[test]
    fn decimals_match_arrow() {
        for (v, s) in [
            (12345i128, 2usize),
            (-5, 2),
            (0, 3),
            (7, 0),
            (-120, 1),
            (99_999_999_999_999_999_999_999_999_999_999_999_999, 10),
            (-1, 38),
        ] {
            let mut out = Vec::new();
            write_decimal(&mut out, v, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                Decimal128Type::format_decimal(v, 38, s as i8),
                "{v} {s}"
            );
        }
    }

    #[test]
    fn timestamps_of_one_and_of_different_days_read_like_chrono_formats_them() {
        // Same day repeated (the date is reused), day changes both ways,
        // before the epoch, and a year past 9999 (the slow path).
        let micros: Vec<i64> = vec![
            1_704_164_645_123_456,
            1_704_164_646_000_000,
            1_704_239_999_999_999,
            1_704_240_000_000_000,
            1_704_164_645_123_456,
            -1,
            -86_400_000_001,
            253_402_300_800_000_000,
        ];
        let json = encode(vec![(
            "ts",
            Arc::new(TimestampMicrosecondArray::from(micros.clone()).with_timezone("-05:00")),
        )]);
        let expected: Vec<String> = micros
            .iter()
            .map(|&v| {
                let local = DateTime::from_timestamp_micros(v)
                    .unwrap()
                    .with_timezone(&FixedOffset::west_opt(5 * 3600).unwrap())
                    .naive_local();
                format!("[\"{} -05:00\"]", local.format("%Y-%m-%d %H:%M:%S%.6f"))
            })
            .collect();
        assert_eq!(json, format!("[{}]", expected.join(",")));
    }

    #[test]
    fn temporal() {
        let json = encode(vec![
            ("d", Arc::new(Date32Array::from(vec![19724]))),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(vec![1_704_164_645_123_456])),
            ),
            (
                "tsz",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_704_164_645_000_001])
                        .with_timezone("+00:00"),
                ),
            ),
            (
                "tso",
                Arc::new(TimestampNanosecondArray::from(vec![-1]).with_timezone("+02:00")),
            ),
            (
                "t",
                Arc::new(Time64MicrosecondArray::from(vec![3_723_000_500])),
            ),
        ]);
        assert_eq!(
            json,
            r#"[["2024-01-02","2024-01-02 03:04:05.123456","2024-01-02 03:04:05.000001 UTC","1970-01-01 01:59:59.999999999 +02:00","01:02:03.000500"]]"#
        );
    }

    #[test]
    fn doubles_read_back_as_the_same_value() {
        let values = vec![
            0.0,
            -0.0,
            1.0 / 7.0,
            1e16,
            1.5e-7,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            -123_456.789,
        ];
        let json = encode(vec![("d", Arc::new(Float64Array::from(values.clone())))]);
        let parsed: Vec<Vec<f64>> = serde_json::from_str(&json).unwrap();
        let back: Vec<f64> = parsed.into_iter().map(|r| r[0]).collect();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn times_of_every_precision_have_exactly_that_many_digits() {
        use arrow::array::{Time32MillisecondArray, Time32SecondArray, Time64NanosecondArray};
        let json = encode(vec![
            ("s", Arc::new(Time32SecondArray::from(vec![0, 86_399]))),
            (
                "ms",
                Arc::new(Time32MillisecondArray::from(vec![1, 45_296_789])),
            ),
            (
                "us",
                Arc::new(Time64MicrosecondArray::from(vec![999_999, 86_399_999_999])),
            ),
            (
                "ns",
                Arc::new(Time64NanosecondArray::from(vec![1, 86_399_999_999_999])),
            ),
            // Out of a day's range: the raw value, never a wrong time.
            ("bad", Arc::new(Time32SecondArray::from(vec![86_400, -1]))),
        ]);
        assert_eq!(
            json,
            r#"[["00:00:00","00:00:00.001","00:00:00.999999","00:00:00.000000001","86400"],["23:59:59","12:34:56.789","23:59:59.999999","23:59:59.999999999","-1"]]"#
        );
    }

    #[test]
    fn timestamps_of_every_precision_read_like_chrono_formats_them() {
        use arrow::array::{TimestampMillisecondArray, TimestampSecondArray};
        let secs = [0i64, 1_704_164_645, -1, 951_782_400]; // 2000-02-29
        let json = encode(vec![
            ("s", Arc::new(TimestampSecondArray::from(secs.to_vec()))),
            (
                "ms",
                Arc::new(TimestampMillisecondArray::from(
                    secs.iter().map(|s| s * 1000 + 7).collect::<Vec<_>>(),
                )),
            ),
            (
                "ns",
                Arc::new(TimestampNanosecondArray::from(
                    secs.iter()
                        .map(|s| s * 1_000_000_000 + 123_456_789)
                        .collect::<Vec<_>>(),
                )),
            ),
        ]);
        let rows: Vec<String> = secs
            .iter()
            .map(|&s| {
                let t = DateTime::from_timestamp(s, 0).unwrap().naive_utc();
                format!(
                    "[\"{}\",\"{}.007\",\"{}.123456789\"]",
                    t.format("%Y-%m-%d %H:%M:%S"),
                    t.format("%Y-%m-%d %H:%M:%S"),
                    t.format("%Y-%m-%d %H:%M:%S")
                )
            })
            .collect();
        assert_eq!(json, format!("[{}]", rows.join(",")));
    }

    #[test]
    fn binary_is_base64_between_quotes() {
        let values: Vec<&[u8]> = vec![b"", b"a", b"ab", b"abc", b"\x00\xff\x10\x80"];
        let json = encode(vec![("b", Arc::new(BinaryArray::from(values.clone())))]);
        let parsed: Vec<Vec<String>> = serde_json::from_str(&json).unwrap();
        for (row, raw) in parsed.iter().zip(values) {
            assert_eq!(
                base64::engine::general_purpose::STANDARD
                    .decode(&row[0])
                    .unwrap(),
                raw
            );
        }
    }

    #[test]
    fn nested() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
        ]);
        let row = StructArray::from(vec![
            (
                Arc::new(Field::new("a", DataType::Int32, true)),
                Arc::new(Int32Array::from(vec![7, 8])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("b", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef,
            ),
        ]);
        let mut map = MapBuilder::new(None, StringBuilder::new(), Int64Array::builder(2));
        map.keys().append_value("k");
        map.values().append_value(1);
        map.append(true).unwrap();
        map.append(true).unwrap();
        let json = encode(vec![
            ("l", Arc::new(list)),
            ("r", Arc::new(row)),
            ("m", Arc::new(map.finish())),
        ]);
        assert_eq!(json, r#"[[[1,null],[7,"x"],{"k":1}],[null,[8,"y"],{}]]"#);
    }

    #[test]
    fn pages_stop_at_the_byte_bound() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("i", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from((0..100).collect::<Vec<_>>()))],
        )
        .unwrap();
        let mut out = Vec::new();
        let n = write_rows(&batch, 10, 50, &mut out, 20, true).unwrap();
        assert_eq!(out, b"[10],[11],[12],[13],[14]");
        assert_eq!(n, 5);
        // At least one row, however small the bound.
        let mut out = Vec::new();
        assert_eq!(write_rows(&batch, 0, 50, &mut out, 1, true).unwrap(), 1);
    }
}
