//! The MongoDB wire protocol as far as the simulator needs it: the 16-byte header and `OP_MSG`
//! (opcode 2013) with its body section (kind 0) and document sequences (kind 1).
//!
//! The official Rust driver 3.x sends every command, including the first `isMaster`/`hello`
//! handshake, as `OP_MSG`; legacy `OP_QUERY` and `OP_COMPRESSED` are refused with an error.

use bson::{Bson, Document};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const OP_MSG: i32 = 2013;
/// The driver never sends more than this; MongoDB's own limit is 48 MB.
const MAX_MESSAGE: i32 = 48 * 1024 * 1024;
const CHECKSUM_PRESENT: u32 = 1;
const MORE_TO_COME: u32 = 1 << 1;

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("message length {0} out of range")]
    Length(i32),
    #[error("opcode {0} is not supported by the simulator (only OP_MSG, 2013)")]
    OpCode(i32),
    #[error("malformed OP_MSG: {0}")]
    Malformed(&'static str),
    #[error("bad BSON in OP_MSG: {0}")]
    Bson(#[from] bson::error::Error),
}

/// One command received: the body with document sequences folded in.
#[derive(Debug, Clone)]
pub struct Request {
    pub request_id: i32,
    pub command: Document,
    /// The client does not want a reply (`moreToCome`).
    pub more_to_come: bool,
}

/// Read one OP_MSG. `Ok(None)` on a clean end of stream.
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Request>, WireError> {
    let mut header = [0u8; 16];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let request_id = i32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let opcode = i32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if !(21..=MAX_MESSAGE).contains(&len) {
        return Err(WireError::Length(len));
    }
    let mut rest = vec![0u8; (len - 16) as usize];
    r.read_exact(&mut rest).await?;
    if opcode != OP_MSG {
        return Err(WireError::OpCode(opcode));
    }
    let flags = u32::from_le_bytes(*rest.first_chunk().ok_or(WireError::Malformed("flags"))?);
    let mut end = rest.len();
    if flags & CHECKSUM_PRESENT != 0 {
        end = end.checked_sub(4).ok_or(WireError::Malformed("checksum"))?;
    }
    // The sections, each consumed from the front: every length in them is the client's word, so
    // nothing here indexes; a length past the end is a malformed message.
    let mut sections = rest.get(4..end).unwrap_or_default();
    let mut body: Option<Document> = None;
    let mut sequences: Vec<(String, Vec<Bson>)> = Vec::new();
    while let Some((&kind, after)) = sections.split_first() {
        match kind {
            0 => {
                let (doc, next) = read_doc(after)?;
                body = Some(doc);
                sections = next;
            }
            1 => {
                // A negative size once wrapped to a huge usize and overflowed `pos + size`.
                let bad_size = || WireError::Malformed("document sequence size");
                let size = usize::try_from(read_i32(after)?).map_err(|_| bad_size())?;
                let (section, next) = after
                    .split_at_checked(size)
                    .filter(|_| size >= 5)
                    .ok_or_else(bad_size)?;
                let mut parts = section.get(4..).unwrap_or_default().splitn(2, |b| *b == 0);
                let ident = parts.next().unwrap_or_default();
                let mut p = parts
                    .next()
                    .ok_or(WireError::Malformed("sequence identifier"))?;
                let ident = String::from_utf8_lossy(ident).into_owned();
                let mut docs = Vec::new();
                while !p.is_empty() {
                    let (doc, rest_of_section) = read_doc(p)?;
                    docs.push(Bson::Document(doc));
                    p = rest_of_section;
                }
                sequences.push((ident, docs));
                sections = next;
            }
            _ => return Err(WireError::Malformed("section kind")),
        }
    }
    let mut command = body.ok_or(WireError::Malformed("no body section"))?;
    for (ident, docs) in sequences {
        command.insert(ident, Bson::Array(docs));
    }
    Ok(Some(Request {
        request_id,
        command,
        more_to_come: flags & MORE_TO_COME != 0,
    }))
}

fn read_i32(b: &[u8]) -> Result<i32, WireError> {
    b.first_chunk()
        .map(|s| i32::from_le_bytes(*s))
        .ok_or(WireError::Malformed("truncated"))
}

/// One BSON document at the front of `b`, and what follows it.
fn read_doc(b: &[u8]) -> Result<(Document, &[u8]), WireError> {
    let (doc, rest) = usize::try_from(read_i32(b)?)
        .ok()
        .filter(|size| *size >= 5)
        .and_then(|size| b.split_at_checked(size))
        .ok_or(WireError::Malformed("document size"))?;
    Ok((Document::from_reader(doc)?, rest))
}

/// Encode one OP_MSG reply to `response_to`.
pub fn encode_reply(
    request_id: i32,
    response_to: i32,
    body: &Document,
) -> Result<Vec<u8>, WireError> {
    let doc = body.to_vec()?;
    let len = 16 + 4 + 1 + doc.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&OP_MSG.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&doc);
    Ok(out)
}

/// Write one reply.
pub async fn write_reply<W: AsyncWrite + Unpin>(
    w: &mut W,
    request_id: i32,
    response_to: i32,
    body: &Document,
) -> Result<(), WireError> {
    let bytes = encode_reply(request_id, response_to, body)?;
    w.write_all(&bytes).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bson::doc;

    #[tokio::test]
    async fn a_reply_reads_back_as_a_request_and_sequences_fold_into_the_body() {
        let bytes = encode_reply(7, 3, &doc! {"hello": 1, "$db": "admin"}).unwrap();
        let req = read_request(&mut &bytes[..]).await.unwrap().unwrap();
        assert_eq!(req.request_id, 7);
        assert_eq!(req.command.get_i32("hello").unwrap(), 1);

        // Body + a kind-1 sequence "documents" with two documents, as the driver sends inserts.
        let body = doc! {"insert": "c", "$db": "test"}.to_vec().unwrap();
        let d1 = doc! {"a": 1}.to_vec().unwrap();
        let d2 = doc! {"a": 2}.to_vec().unwrap();
        let mut seq = Vec::new();
        let ident = b"documents\0";
        seq.extend_from_slice(&((4 + ident.len() + d1.len() + d2.len()) as i32).to_le_bytes());
        seq.extend_from_slice(ident);
        seq.extend_from_slice(&d1);
        seq.extend_from_slice(&d2);
        let len = 16 + 4 + 1 + body.len() + 1 + seq.len();
        let mut msg = Vec::new();
        msg.extend_from_slice(&(len as i32).to_le_bytes());
        msg.extend_from_slice(&9i32.to_le_bytes());
        msg.extend_from_slice(&0i32.to_le_bytes());
        msg.extend_from_slice(&OP_MSG.to_le_bytes());
        msg.extend_from_slice(&0u32.to_le_bytes());
        msg.push(0);
        msg.extend_from_slice(&body);
        msg.push(1);
        msg.extend_from_slice(&seq);
        let req = read_request(&mut &msg[..]).await.unwrap().unwrap();
        assert_eq!(req.command.get_array("documents").unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_negative_document_sequence_size_is_malformed_not_a_panic() {
        // Found by the wire fuzz target: `pos + size` overflowed for size -1.
        let body = doc! {"ping": 1, "$db": "admin"}.to_vec().unwrap();
        let len = 16 + 4 + 1 + body.len() + 1 + 4;
        let mut msg = Vec::new();
        msg.extend_from_slice(&(len as i32).to_le_bytes());
        msg.extend_from_slice(&1i32.to_le_bytes());
        msg.extend_from_slice(&0i32.to_le_bytes());
        msg.extend_from_slice(&OP_MSG.to_le_bytes());
        msg.extend_from_slice(&0u32.to_le_bytes());
        msg.push(0);
        msg.extend_from_slice(&body);
        msg.push(1);
        msg.extend_from_slice(&(-1i32).to_le_bytes());
        let err = read_request(&mut &msg[..]).await.unwrap_err();
        assert!(err.to_string().contains("document sequence size"), "{err}");
    }

    #[tokio::test]
    async fn legacy_op_query_is_refused_by_name() {
        let mut msg = Vec::new();
        msg.extend_from_slice(&21i32.to_le_bytes());
        msg.extend_from_slice(&1i32.to_le_bytes());
        msg.extend_from_slice(&0i32.to_le_bytes());
        msg.extend_from_slice(&2004i32.to_le_bytes());
        msg.extend_from_slice(&[0u8; 5]);
        let err = read_request(&mut &msg[..]).await.unwrap_err();
        assert!(err.to_string().contains("opcode 2004"));
    }
}
