//! Entry points for the coverage-guided fuzzer (`fuzz/`) and for the
//! replay of its corpus in the normal tests: the bytes a client controls
//! in tickets, prepared-statement handles, parameters, commands and action
//! bodies. Not an API.

use std::time::{Duration, SystemTime};

use arrow_flight::Action;

use crate::ticket::{Kind, MAGIC, TicketSigner, decode_params};
use crate::wire::{check_action, check_command};

/// Opens `data` as a ticket and as a handle (as a client would present
/// them), opens it again signed (so the claims parser and the parameter
/// decoder see arbitrary payloads, which only a key holder could produce)
/// and checks it as a command and as action bodies. (Client parameters
/// arrive by DoPut through arrow-flight's decoder, whose panics the
/// service turns into internal errors.)
pub fn ticket(data: &[u8]) {
    let signer = TicketSigner::new(&[7u8; 32], Duration::from_secs(60));
    let now = SystemTime::now();
    for kind in [Kind::Ticket, Kind::Prepared] {
        let _ = signer.open(data, kind, "t-fuzz", now);
    }
    let mut signed = MAGIC.to_vec();
    signed.extend_from_slice(data);
    let tag = signer.tag(&signed);
    signed.extend_from_slice(&tag);
    for kind in [Kind::Ticket, Kind::Prepared] {
        if let Ok(claims) = signer.open(&signed, kind, "t-fuzz", now)
            && let Some(params) = &claims.params
        {
            let _ = decode_params(params);
        }
    }
    let _ = check_command(data, "command");
    for r#type in [
        "CreatePreparedStatement",
        "ClosePreparedStatement",
        "CancelQuery",
    ] {
        let _ = check_action(&Action::new(r#type, data.to_vec()));
    }
}
