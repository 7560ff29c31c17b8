//! catalogue's extensions of xlReg, outside the seed's schema: the
//! [`Envelope`] that carries an `XLRegMsg` together with an `XLRegExt`
//! (`proto/proto/xlreg_ext.proto`), and the admission proof.
//!
//! ```text
//! plaintext = encode(XLRegMsg) ‖ encode(XLRegExt)      (XLRegExt may be empty)
//! ```
//!
//! Protobuf encodings concatenate, so the plaintext is read once as an
//! `XLRegMsg` (which skips the extension's fields, numbered 100 and up, as
//! unknown) and once as an `XLRegExt` (which skips the seed's fields). A
//! message without extension fields is byte for byte what the seed sends.
//! docs/XLREG.md, "14. Extensions", lists the fields and when each is sent.

use catalogue_proto::{reg::XlRegMsg, regext::XlRegExt};
use prost::Message;

use super::crypto::{self, CryptoError};

/// The extension level this implementation speaks (`XLRegExt.Extensions`).
pub const EXTENSIONS: u32 = 1;

/// What the admission proof is computed over, before salt2.
pub const ADMISSION_LABEL: &[u8] = b"xlReg admission v1";

/// `Op` of `Leave` (extension op, a number the seed's `Tag` does not use):
/// a member leaves a cluster (docs/XLREG.md §14). In the registry log, the
/// record of a member leaving or removed.
pub const OP_LEAVE: i32 = 100;
/// `Op` of the reply to `Leave`.
pub const OP_LEAVE_REPLY: i32 = 101;
/// `Op` of a size change in the registry log (the operator's `set-size`).
pub const OP_SET_SIZE: i32 = 102;

/// What a `Leave` signature covers before the client ID, cluster ID and
/// salt2.
pub const LEAVE_LABEL: &[u8] = b"xlReg leave v1";

/// The bytes a member signs to leave `cluster` in the session of `salt2`:
/// `"xlReg leave v1" ‖ ClientID ‖ ClusterID ‖ Salt2` (salt2 is fresh per
/// session, so a captured signature is worth nothing in another).
pub fn leave_signed_bytes(client: &[u8], cluster: &[u8], salt2: &[u8]) -> Vec<u8> {
    [LEAVE_LABEL, client, cluster, salt2].concat()
}

/// One session message: the seed's fields and ours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    /// The seed's message.
    pub msg: XlRegMsg,
    /// The extension fields (all absent for a seed peer).
    pub ext: XlRegExt,
}

impl From<XlRegMsg> for Envelope {
    fn from(msg: XlRegMsg) -> Self {
        Envelope {
            msg,
            ext: XlRegExt::default(),
        }
    }
}

impl Envelope {
    /// The plaintext: the message's encoding, then the extension's.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        // Encoding into a Vec that has room cannot fail.
        let _ = self.msg.encode(&mut out);
        let _ = self.ext.encode(&mut out);
        out
    }

    /// Length of [`Envelope::encode_to_vec`].
    pub fn encoded_len(&self) -> usize {
        self.msg.encoded_len() + self.ext.encoded_len()
    }

    /// Reads a plaintext as both messages. Either failing to decode fails
    /// the whole (e.g. an extension number sent with the wrong wire type).
    pub fn decode(plain: &[u8]) -> Result<Envelope, prost::DecodeError> {
        Ok(Envelope {
            msg: XlRegMsg::decode(plain)?,
            ext: XlRegExt::decode(plain)?,
        })
    }
}

/// The admission proof a client sends in `Client` when the registry
/// requires a shared secret: HMAC-SHA256 keyed with the secret over
/// [`ADMISSION_LABEL`] ‖ salt2 of this session (so a proof is worth
/// nothing in another session, and the secret itself never travels).
pub fn admission_proof(secret: &[u8], salt2: &[u8]) -> Result<[u8; 32], CryptoError> {
    crypto::hmac_sha256(secret, &[ADMISSION_LABEL, salt2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_without_extensions_is_the_seed_message() {
        let msg = XlRegMsg {
            op: Some(11),
            ..Default::default()
        };
        let env = Envelope::from(msg.clone());
        assert_eq!(env.encode_to_vec(), msg.encode_to_vec());
        assert_eq!(
            Envelope::decode(&msg.encode_to_vec()).expect("decodes"),
            env
        );
    }

    #[test]
    fn extension_fields_survive_and_a_seed_reader_skips_them() {
        let env = Envelope {
            msg: XlRegMsg {
                op: Some(3),
                client_name: Some("a".into()),
                ..Default::default()
            },
            ext: XlRegExt {
                admit_proof: Some(vec![7; 32]),
                extensions: Some(EXTENSIONS),
                ..Default::default()
            },
        };
        let plain = env.encode_to_vec();
        assert_eq!(Envelope::decode(&plain).expect("decodes"), env);
        // What a seed implementation reads: the seed's fields, nothing else.
        assert_eq!(XlRegMsg::decode(plain.as_slice()).expect("seed"), env.msg);
    }

    #[test]
    fn an_extension_number_with_the_wrong_wire_type_does_not_decode() {
        // field 100 (AdmitProof, bytes) sent as a varint: tag (100 << 3) | 0
        let plain = [0xA0, 0x06, 0x01];
        assert!(
            XlRegMsg::decode(plain.as_slice()).is_ok(),
            "the seed skips it"
        );
        assert!(Envelope::decode(&plain).is_err());
    }

    #[test]
    fn the_proof_depends_on_the_secret_and_the_session() {
        let a = admission_proof(b"0123456789abcdef", &[1; 8]).expect("hmac");
        assert_ne!(
            a,
            admission_proof(b"0123456789abcdeF", &[1; 8]).expect("hmac")
        );
        assert_ne!(
            a,
            admission_proof(b"0123456789abcdef", &[2; 8]).expect("hmac")
        );
        assert_eq!(
            a,
            admission_proof(b"0123456789abcdef", &[1; 8]).expect("hmac")
        );
    }
}
