//! Mask functions (DESIGN §4.3).
//!
//! A masked column is projected through one of these inside the secure view,
//! *below* every user expression, so predicates, joins and aggregates only
//! ever see the masked value. The functions are not registered in the
//! session: users cannot call them, and they are built directly into the
//! secure view's projection.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{cast, lit};

use crate::policy::Mask;

/// The context of the key derivation that turns `[policy] mask_key` into
/// the `hash` mask's BLAKE3 key: a key configured for something else as
/// well still gives this mask an independent key.
pub const HASH_KEY_CONTEXT: &str = "sluice 2026-12-07 hash mask";

/// The deployment's key of the `hash` mask (derived from `[policy]
/// mask_key`). Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MaskKey(Arc<[u8; 32]>);

impl MaskKey {
    /// The mask key derived from configured key material.
    pub fn new(key: &[u8]) -> Self {
        Self(Arc::new(blake3::derive_key(HASH_KEY_CONTEXT, key)))
    }

    /// The derived 32-byte key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaskKey(<redacted>)")
    }
}

/// The constant shown for redacted text.
pub const REDACTED: &str = "[REDACTED]";

/// The output type of a masked column whose source type is `source`.
pub fn masked_type(mask: &Mask, source: &DataType) -> DataType {
    match mask {
        Mask::Null => source.clone(),
        Mask::Redact if !is_text(source) => source.clone(),
        Mask::Hash | Mask::Redact | Mask::Partial { .. } => DataType::Utf8,
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The logical expression presenting `column` (of type `source`) masked.
/// `key`: the deployment's key for the `hash` mask.
pub fn mask_expr(
    mask: &Mask,
    column: Expr,
    source: &DataType,
    key: Option<&MaskKey>,
) -> Result<Expr> {
    let null = || ScalarValue::try_from(source).map(lit);
    Ok(match mask {
        Mask::Null => null()?,
        Mask::Redact if !is_text(source) => null()?,
        _ => Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(MaskUdf::new(*mask, key.cloned()))),
            vec![cast(column, DataType::Utf8)],
        )),
    })
}

/// A mask applied to a text column (the secure view casts its input to
/// `Utf8` first).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskUdf {
    mask: Mask,
    key: Option<MaskKey>,
    name: String,
    signature: Signature,
}

impl MaskUdf {
    /// The UDF for `mask` (`hash`, `redact` or `partial`); `key` keys the hash.
    pub fn new(mask: Mask, key: Option<MaskKey>) -> Self {
        let name = match mask {
            Mask::Partial {
                keep_first,
                keep_last,
            } => format!("sluice_mask_partial_{keep_first}_{keep_last}"),
            other => format!("sluice_mask_{other}"),
        };
        Self {
            mask,
            key,
            name,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MaskUdf {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name);
        };
        let array = arg.to_array(args.number_rows)?;
        let Some(strings) = array.as_any().downcast_ref::<StringArray>() else {
            return exec_err!("{} expects Utf8, got {}", self.name, array.data_type());
        };
        Ok(ColumnarValue::Array(apply_mask(
            &self.mask,
            strings,
            self.key.as_ref().map(MaskKey::as_bytes),
        )))
    }
}

/// Applies a text mask to every value of `input`.
///
/// The `hash` mask is keyed BLAKE3 under `key` when there is one, plain
/// BLAKE3 otherwise, as 64 lowercase hex digits. Keyed BLAKE3 is a
/// pseudo-random function: without the key, a hash cannot be reversed by
/// hashing a dictionary of guesses, nor linked to the value's hash
/// elsewhere; equal values still hash equally, so hashed columns join and
/// group. It costs about a tenth of HMAC-SHA256 on short values (one
/// compression instead of four), and each partition of a scan masks its
/// own batches.
pub fn apply_mask(mask: &Mask, input: &StringArray, key: Option<&[u8; 32]>) -> ArrayRef {
    let width = match mask {
        Mask::Hash => HASH_HEX_LEN,
        Mask::Redact => REDACTED.len(),
        _ => 16,
    };
    let mut out = StringBuilder::with_capacity(input.len(), input.len() * width);
    let mut hex = [0u8; HASH_HEX_LEN];
    for value in input.iter() {
        match (mask, value) {
            (Mask::Redact, _) => out.append_value(REDACTED),
            (_, None) => out.append_null(),
            (Mask::Hash, Some(v)) => {
                let hash = match key {
                    Some(key) => blake3::keyed_hash(key, v.as_bytes()),
                    None => blake3::hash(v.as_bytes()),
                };
                out.append_value(hex_digits(hash.as_bytes(), &mut hex));
            }
            (
                Mask::Partial {
                    keep_first,
                    keep_last,
                },
                Some(v),
            ) => out.append_value(partial(v, *keep_first, *keep_last)),
            (Mask::Null, Some(_)) => out.append_null(),
        }
    }
    Arc::new(out.finish())
}

/// Hex digits of a `hash` mask value.
const HASH_HEX_LEN: usize = 64;

/// `bytes` as lowercase hex in `out`.
fn hex_digits<'a>(bytes: &[u8; 32], out: &'a mut [u8; HASH_HEX_LEN]) -> &'a str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
    std::str::from_utf8(out).unwrap_or_else(|_| unreachable!("hex digits are ASCII"))
}

/// `partial(keep_first, keep_last)` of one value.
pub fn partial(v: &str, keep_first: usize, keep_last: usize) -> String {
    let n = v.chars().count();
    if n <= keep_first.saturating_add(keep_last) {
        return "*".repeat(n);
    }
    let mut s = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        if i < keep_first || i >= n - keep_last {
            s.push(c);
        } else {
            s.push('*');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_mask() {
        assert_eq!(partial("alice@example.com", 2, 4), "al***********.com");
        assert_eq!(partial("abc", 2, 1), "***");
        assert_eq!(partial("abcd", 2, 1), "ab*d");
        assert_eq!(partial("", 0, 0), "");
        assert_eq!(partial("héllo", 1, 1), "h***o");
    }

    #[test]
    fn masks_on_arrays() {
        let input = StringArray::from(vec![Some("abc"), None]);
        let h = apply_mask(&Mask::Hash, &input, None);
        let h = h.as_any().downcast_ref::<StringArray>().unwrap();
        // BLAKE3's published hash of "abc".
        assert_eq!(
            h.value(0),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert!(h.is_null(1));
        // Computed independently with the Python `blake3` package:
        // blake3(msg, key=blake3(b"Jefe", derive_key_context=HASH_KEY_CONTEXT)).
        let msg = StringArray::from(vec!["what do ya want for nothing?"]);
        let key = MaskKey::new(b"Jefe");
        let keyed = apply_mask(&Mask::Hash, &msg, Some(key.as_bytes()));
        let keyed = keyed.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            keyed.value(0),
            "a01ed324d9a456be6b24e4dca690cb5a9410347b093b9a07cdae56d5629d9b7f"
        );
        let r = apply_mask(&Mask::Redact, &input, None);
        let r = r.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(r.value(0), REDACTED);
        assert_eq!(r.value(1), REDACTED);
    }

    #[test]
    fn masked_types() {
        assert_eq!(masked_type(&Mask::Hash, &DataType::Int64), DataType::Utf8);
        assert_eq!(masked_type(&Mask::Null, &DataType::Int64), DataType::Int64);
        assert_eq!(
            masked_type(&Mask::Redact, &DataType::Float64),
            DataType::Float64
        );
        assert_eq!(masked_type(&Mask::Redact, &DataType::Utf8), DataType::Utf8);
    }
}
