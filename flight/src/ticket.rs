//! Self-contained, signed tickets and prepared-statement handles.
//!
//! Wire form: `MAGIC || payload || tag`, where `payload` is the JSON
//! [`Claims`] and `tag = HMAC-SHA256(key, MAGIC || payload)`. The tag is
//! checked (in constant time) before the payload is parsed, so nothing a
//! client forged is ever interpreted. The claims name the token that created
//! the ticket; a ticket is only honoured for that token, and only until it
//! expires.
//!
//! Bound parameters travel inside the claims as one-row Arrow IPC streams
//! ([`encode_params`] / [`decode_params`]).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use datafusion::common::ScalarValue;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Version prefix of every ticket and handle.
pub(crate) const MAGIC: &[u8; 4] = b"slc1";
/// Length of the HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// Minimum lifetime of a prepared-statement handle.
const MIN_HANDLE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What a signed blob is for. Part of the signed payload, so a handle cannot
/// be presented as a ticket or vice versa.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// A `DoGet` ticket (inside `TicketStatementQuery`).
    Ticket,
    /// A prepared-statement handle.
    Prepared,
}

/// The signed content of a ticket or handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// Ticket or prepared handle.
    pub(crate) kind: Kind,
    /// Id of the token that created it.
    pub(crate) token_id: String,
    /// The statement.
    pub(crate) sql: String,
    /// Bound parameters: a one-row Arrow IPC stream.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64")]
    pub(crate) params: Option<Vec<u8>>,
    /// Issued at, seconds since the Unix epoch.
    pub(crate) issued_at: u64,
    /// Expires at, seconds since the Unix epoch (exclusive).
    pub(crate) expires_at: u64,
}

/// Why a ticket or handle was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TicketError {
    /// Not a sluice ticket at all (wrong prefix, too short).
    #[error("malformed ticket or prepared statement handle")]
    Malformed,
    /// The signature does not match: forged, altered, or signed with another key.
    #[error("invalid ticket or prepared statement handle")]
    BadSignature,
    /// A handle presented as a ticket or the other way round.
    #[error("wrong kind of ticket or prepared statement handle")]
    WrongKind,
    /// Past its expiry time.
    #[error("ticket or prepared statement handle has expired")]
    Expired,
    /// Issued to another token.
    #[error("ticket was not issued to this token")]
    WrongToken,
}

/// Signs and verifies tickets and handles.
#[derive(Clone)]
pub(crate) struct TicketSigner {
    mac: HmacSha256,
    ticket_ttl: Duration,
    handle_ttl: Duration,
}

impl fmt::Debug for TicketSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketSigner")
            .field("key", &"<redacted>")
            .field("ticket_ttl", &self.ticket_ttl)
            .field("handle_ttl", &self.handle_ttl)
            .finish()
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TicketSigner {
    /// A signer with the given key (any length is accepted here; the public
    /// constructor enforces the minimum).
    pub(crate) fn new(key: &[u8], ticket_ttl: Duration) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <HmacSha256 as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        Self {
            mac,
            ticket_ttl,
            handle_ttl: ticket_ttl.max(MIN_HANDLE_TTL),
        }
    }

    /// Signs new claims for `token_id`, valid from `now` for the kind's TTL.
    pub(crate) fn seal(
        &self,
        kind: Kind,
        token_id: &str,
        sql: &str,
        params: Option<Vec<u8>>,
        now: SystemTime,
    ) -> Bytes {
        let ttl = match kind {
            Kind::Ticket => self.ticket_ttl,
            Kind::Prepared => self.handle_ttl,
        };
        let issued_at = unix_seconds(now);
        self.sign(&Claims {
            kind,
            token_id: token_id.to_owned(),
            sql: sql.to_owned(),
            params,
            issued_at,
            expires_at: issued_at.saturating_add(ttl.as_secs().max(1)),
        })
    }

    /// The same claims with other bound parameters, keeping the original
    /// issue and expiry times.
    pub(crate) fn rebind(&self, claims: &Claims, params: Option<Vec<u8>>) -> Bytes {
        self.sign(&Claims {
            params,
            ..claims.clone()
        })
    }

    fn sign(&self, claims: &Claims) -> Bytes {
        // Serializing plain strings, integers and an enum cannot fail.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut out = Vec::with_capacity(MAGIC.len() + payload.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&payload);
        let tag = self.tag(&out);
        out.extend_from_slice(&tag);
        Bytes::from(out)
    }

    /// Verifies a ticket or handle presented by the token `caller_token_id`:
    /// signature (constant time), kind, expiry, then ownership.
    pub(crate) fn open(
        &self,
        blob: &[u8],
        kind: Kind,
        caller_token_id: &str,
        now: SystemTime,
    ) -> Result<Claims, TicketError> {
        if blob.len() < MAGIC.len() + TAG_LEN || !blob.starts_with(MAGIC) {
            return Err(TicketError::Malformed);
        }
        let (signed, tag) = blob.split_at(blob.len() - TAG_LEN);
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.verify_slice(tag)
            .map_err(|_| TicketError::BadSignature)?;
        // Authentic from here on: parse failures mean a bug or a key shared
        // with something else, not an attack.
        let claims: Claims =
            serde_json::from_slice(&signed[MAGIC.len()..]).map_err(|_| TicketError::Malformed)?;
        if claims.kind != kind {
            return Err(TicketError::WrongKind);
        }
        if unix_seconds(now) >= claims.expires_at {
            return Err(TicketError::Expired);
        }
        let same_token: bool = claims
            .token_id
            .as_bytes()
            .ct_eq(caller_token_id.as_bytes())
            .into();
        if !same_token {
            return Err(TicketError::WrongToken);
        }
        Ok(claims)
    }

    /// The signature of `blob` if it is a genuine, unexpired ticket or
    /// handle of `kind` (of any token): what identifies one redemption.
    pub(crate) fn genuine_signature(
        &self,
        blob: &[u8],
        kind: Kind,
        now: SystemTime,
    ) -> Option<Vec<u8>> {
        if blob.len() < MAGIC.len() + TAG_LEN || !blob.starts_with(MAGIC) {
            return None;
        }
        let (signed, tag) = blob.split_at(blob.len() - TAG_LEN);
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.verify_slice(tag).ok()?;
        let claims: Claims = serde_json::from_slice(&signed[MAGIC.len()..]).ok()?;
        (claims.kind == kind && unix_seconds(now) < claims.expires_at).then(|| tag.to_vec())
    }

    /// How long tickets of `kind` live.
    pub(crate) fn ttl(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Ticket => self.ticket_ttl,
            Kind::Prepared => self.handle_ttl,
        }
    }

    pub(crate) fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

/// Errors of the parameter codec (client-supplied data: reported, never
/// unwrapped).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ParamsError {
    /// Arrow IPC or scalar conversion failed.
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// DataFusion could not turn a column into a scalar.
    #[error("{0}")]
    Scalar(#[from] datafusion::error::DataFusionError),
    /// Not exactly one row.
    #[error("expected exactly one row of parameters, got {0}")]
    RowCount(usize),
    /// More values than a row of parameters may hold.
    #[error("a row of parameters holds at most 1000000 values (list elements included)")]
    TooLarge,
    /// A type whose length is not backed by the data sent.
    #[error("parameters cannot be list views, run-end encoded, dictionaries or unions")]
    UnsupportedType,
}

/// Most values a row of parameters may hold, counting every element of
/// every list (a list's declared length costs nothing to send: a list of
/// a trillion NULLs is a few bytes of Arrow IPC).
pub(crate) const MAX_PARAM_VALUES: u128 = 1_000_000;

/// Refuses parameters with more than [`MAX_PARAM_VALUES`] values in all,
/// or of types whose length is not backed by data sent (list views,
/// run-end encoding, dictionaries).
pub(crate) fn check_params(batch: &RecordBatch) -> Result<(), ParamsError> {
    let mut total: u128 = 0;
    for column in batch.columns() {
        total = total.saturating_add(values(column.as_ref())?);
        if total > MAX_PARAM_VALUES {
            return Err(ParamsError::TooLarge);
        }
    }
    Ok(())
}

/// Values in `array`, children included.
fn values(array: &dyn arrow::array::Array) -> Result<u128, ParamsError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DataType;
    let own = array.len() as u128;
    let children = match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let (start, end) = (list.value_offsets()[0], list.value_offsets()[list.len()]);
            let child = list.values().slice(start as usize, (end - start) as usize);
            values(child.as_ref())?
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let (start, end) = (list.value_offsets()[0], list.value_offsets()[list.len()]);
            if (end - start) as u128 > MAX_PARAM_VALUES {
                return Err(ParamsError::TooLarge);
            }
            let child = list.values().slice(start as usize, (end - start) as usize);
            values(child.as_ref())?
        }
        DataType::FixedSizeList(_, _) => values(array.as_fixed_size_list().values().as_ref())?,
        DataType::Struct(_) => {
            let mut sum: u128 = 0;
            for c in array.as_struct().columns() {
                sum = sum.saturating_add(values(c.as_ref())?);
            }
            sum
        }
        DataType::Map(_, _) => values(array.as_map().entries())?,
        DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::RunEndEncoded(_, _)
        | DataType::Dictionary(_, _)
        | DataType::Union(_, _) => return Err(ParamsError::UnsupportedType),
        _ => 0,
    };
    if own.saturating_add(children) > MAX_PARAM_VALUES {
        return Err(ParamsError::TooLarge);
    }
    Ok(own.saturating_add(children))
}

/// Encodes one row of parameters as an Arrow IPC stream.
pub(crate) fn encode_params(batch: &RecordBatch) -> Result<Vec<u8>, ParamsError> {
    if batch.num_rows() != 1 {
        return Err(ParamsError::RowCount(batch.num_rows()));
    }
    let mut buf = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut buf, batch.schema_ref())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    Ok(buf)
}

/// Decodes parameters written by [`encode_params`] into scalars, in column
/// order (`$1`, `$2`, …).
pub(crate) fn decode_params(bytes: &[u8]) -> Result<Vec<ScalarValue>, ParamsError> {
    // Arrow's push decoder grows its buffers with the bytes it is given:
    // a message that declares a huge length cannot make it allocate more
    // than the client sent (the pull reader allocates the declared length
    // up front).
    let mut decoder = StreamDecoder::new();
    let mut buffer = Buffer::from(bytes);
    let mut row = None;
    let mut rows = 0;
    while let Some(batch) = decoder.decode(&mut buffer)? {
        rows += batch.num_rows();
        if batch.num_rows() > 0 && row.is_none() {
            row = Some(batch);
        }
    }
    decoder.finish()?;
    let batch = match row {
        Some(batch) if rows == 1 => batch,
        _ => return Err(ParamsError::RowCount(rows)),
    };
    batch
        .columns()
        .iter()
        .map(|col| ScalarValue::try_from_array(col, 0).map_err(ParamsError::from))
        .collect()
}

/// serde helper: `Option<Vec<u8>>` as standard base64.
mod b64 {
    use super::{Engine, STANDARD};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => s.serialize_some(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn signer() -> TicketSigner {
        TicketSigner::new(KEY, Duration::from_secs(300))
    }

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn sign_and_verify() {
        let s = signer();
        let blob = s.seal(Kind::Ticket, "tok-a", "SELECT 1", None, t0());
        let claims = s.open(&blob, Kind::Ticket, "tok-a", t0()).unwrap();
        assert_eq!(claims.sql, "SELECT 1");
        assert_eq!(claims.token_id, "tok-a");
        assert_eq!(claims.params, None);
        assert_eq!(claims.expires_at - claims.issued_at, 300);
        // The SQL is visible to whoever holds the ticket, but not alterable.
        assert!(blob.starts_with(MAGIC));
    }

    #[test]
    fn tampering_is_refused() {
        let s = signer();
        let blob = s
            .seal(Kind::Ticket, "tok-a", "SELECT a FROM t", None, t0())
            .to_vec();
        // Flip every byte position in turn: each must be refused.
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            let err = s.open(&bad, Kind::Ticket, "tok-a", t0()).unwrap_err();
            assert!(
                matches!(err, TicketError::BadSignature | TicketError::Malformed),
                "byte {i}: {err:?}"
            );
        }
        // Re-signing altered claims with another key is refused too.
        let other = TicketSigner::new(
            b"another key, also 32 bytes long!",
            Duration::from_secs(300),
        );
        let forged = other.seal(Kind::Ticket, "tok-a", "SELECT secret FROM t", None, t0());
        assert_eq!(
            s.open(&forged, Kind::Ticket, "tok-a", t0()).unwrap_err(),
            TicketError::BadSignature
        );
        // Truncated and garbage input.
        assert_eq!(
            s.open(b"", Kind::Ticket, "tok-a", t0()).unwrap_err(),
            TicketError::Malformed
        );
        assert_eq!(
            s.open(&blob[..blob.len() - 1], Kind::Ticket, "tok-a", t0())
                .unwrap_err(),
            TicketError::BadSignature
        );
        assert_eq!(
            s.open(&[0u8; 64], Kind::Ticket, "tok-a", t0()).unwrap_err(),
            TicketError::Malformed
        );
    }

    #[test]
    fn other_token_is_refused() {
        let s = signer();
        let blob = s.seal(Kind::Ticket, "tok-a", "SELECT 1", None, t0());
        assert_eq!(
            s.open(&blob, Kind::Ticket, "tok-b", t0()).unwrap_err(),
            TicketError::WrongToken
        );
        assert_eq!(
            s.open(&blob, Kind::Ticket, "tok-a2", t0()).unwrap_err(),
            TicketError::WrongToken
        );
        assert_eq!(
            s.open(&blob, Kind::Ticket, "", t0()).unwrap_err(),
            TicketError::WrongToken
        );
    }

    #[test]
    fn expiry() {
        let s = signer();
        let blob = s.seal(Kind::Ticket, "tok-a", "SELECT 1", None, t0());
        let almost = t0() + Duration::from_secs(299);
        assert!(s.open(&blob, Kind::Ticket, "tok-a", almost).is_ok());
        let at = t0() + Duration::from_secs(300);
        assert_eq!(
            s.open(&blob, Kind::Ticket, "tok-a", at).unwrap_err(),
            TicketError::Expired
        );
        // Handles live at least 24 h.
        let handle = s.seal(Kind::Prepared, "tok-a", "SELECT 1", None, t0());
        let later = t0() + Duration::from_secs(3600);
        assert!(s.open(&handle, Kind::Prepared, "tok-a", later).is_ok());
        let day = t0() + MIN_HANDLE_TTL;
        assert_eq!(
            s.open(&handle, Kind::Prepared, "tok-a", day).unwrap_err(),
            TicketError::Expired
        );
    }

    #[test]
    fn kinds_are_not_interchangeable() {
        let s = signer();
        let handle = s.seal(Kind::Prepared, "tok-a", "SELECT 1", None, t0());
        assert_eq!(
            s.open(&handle, Kind::Ticket, "tok-a", t0()).unwrap_err(),
            TicketError::WrongKind
        );
    }

    #[test]
    fn params_round_trip_through_a_handle() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("$1", DataType::Int64, true),
            Field::new("$2", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(42)])),
                Arc::new(StringArray::from(vec![None::<&str>])),
            ],
        )
        .unwrap();
        let s = signer();
        let ipc = encode_params(&batch).unwrap();
        let blob = s.seal(Kind::Prepared, "tok-a", "SELECT $1, $2", Some(ipc), t0());
        let claims = s.open(&blob, Kind::Prepared, "tok-a", t0()).unwrap();
        let params = decode_params(claims.params.as_deref().unwrap()).unwrap();
        assert_eq!(
            params,
            vec![ScalarValue::Int64(Some(42)), ScalarValue::Utf8(None)]
        );
    }

    #[test]
    fn params_must_be_one_row() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let two = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![Some(1), Some(2)]))],
        )
        .unwrap();
        assert!(matches!(encode_params(&two), Err(ParamsError::RowCount(2))));
        assert!(decode_params(b"not ipc").is_err());
    }
}
