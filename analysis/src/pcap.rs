//! Captures into records: pcap (micro- and nanosecond) and pcapng (any if_tsresol),
//! Ethernet link type, taken on the underlay (VXLAN, decapsulated here) or at a VM's
//! interface (plain). Times become nanoseconds since the epoch.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

use crate::record::{Direction, Record, NO_HOST};
use crate::wire::frame::dissect_snapped;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file, or a damaged one: {detail}")]
    Format { path: String, detail: String },
    #[error(
        "{path}: link type {linktype} is not Ethernet (capture on an interface, not `-i any`)"
    )]
    LinkType { path: String, linktype: String },
}

/// Underlay addresses seen in a capture, numbered in order of appearance: the host
/// table that `Record::outer_src`/`outer_dst` index.
#[derive(Debug, Default, Clone)]
pub struct HostTable {
    index: HashMap<[u8; 4], u8>,
    pub addrs: Vec<[u8; 4]>,
}

impl HostTable {
    /// The index of `ip`, adding it; `NO_HOST` once 255 hosts are known.
    pub fn index_of(&mut self, ip: [u8; 4]) -> u8 {
        if let Some(&i) = self.index.get(&ip) {
            return i;
        }
        if self.addrs.len() >= NO_HOST as usize {
            return NO_HOST;
        }
        let i = self.addrs.len() as u8;
        self.index.insert(ip, i);
        self.addrs.push(ip);
        i
    }
}

/// A capture turned into records.
#[derive(Debug, Default)]
pub struct Capture {
    pub records: Vec<Record>,
    pub hosts: HostTable,
    /// Frames whose headers were truncated or malformed (still recorded, flagged).
    pub broken: u64,
    /// Why reading stopped before the file's end, if it did: a capture cut short in
    /// the middle of a record (tcpdump killed, a full disk) or damaged past its header
    /// is read up to there, as tcpdump and tshark read it.
    pub cut_short: Option<String>,
}

/// Turns one frame into a record.
pub fn frame_record(frame: &[u8], orig_len: usize, time_ns: u64, hosts: &mut HostTable) -> Record {
    let (d, verdict) = dissect_snapped(frame, orig_len, true);
    let outer = match d.underlay {
        Some(u) => (hosts.index_of(u.src_ip), hosts.index_of(u.dst_ip)),
        None => (NO_HOST, NO_HOST),
    };
    Record::from_dissection(time_ns, &d, verdict, Direction::Unknown, 0, outer)
}

/// Reads a whole capture file.
pub fn read_capture(path: &Path) -> Result<Capture, CaptureError> {
    let p = path.display().to_string();
    let file = File::open(path).map_err(|source| CaptureError::Open {
        path: p.clone(),
        source,
    })?;
    read_capture_from(file, &p)
}

/// Reads a whole capture from `input` (`name` for errors): pcap or pcapng, told apart
/// by the first four bytes.
pub fn read_capture_from(input: impl Read, name: &str) -> Result<Capture, CaptureError> {
    let p = name.to_string();
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let head = reader.fill_buf().map_err(|e| CaptureError::Format {
        path: p.clone(),
        detail: e.to_string(),
    })?;
    let magic: [u8; 4] = head
        .get(..4)
        .and_then(|m| m.try_into().ok())
        .ok_or_else(|| CaptureError::Format {
            path: p.clone(),
            detail: "shorter than a file header".into(),
        })?;
    let fmt = |e: pcap_file::PcapError| CaptureError::Format {
        path: p.clone(),
        detail: e.to_string(),
    };
    let mut cap = Capture::default();
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut r = PcapNgReader::new(reader).map_err(fmt)?;
        // Ticks per second for each interface (if_tsresol; default microseconds).
        let mut resolution: Vec<u64> = Vec::new();
        while let Some(block) = r.next_block() {
            let block = match block {
                Ok(b) => b,
                Err(e) => {
                    cap.cut_short = Some(e.to_string());
                    break;
                }
            };
            match block {
                Block::InterfaceDescription(idb) => {
                    if idb.linktype != DataLink::ETHERNET {
                        return Err(CaptureError::LinkType {
                            path: p.clone(),
                            linktype: format!("{:?}", idb.linktype),
                        });
                    }
                    let mut hz = 1_000_000u64;
                    for o in &idb.options {
                        if let InterfaceDescriptionOption::IfTsResol(v) = o {
                            hz = if v & 0x80 == 0 {
                                10u64.saturating_pow((*v).into())
                            } else {
                                1u64 << (v & 0x7f).min(63)
                            };
                        }
                    }
                    resolution.push(hz.max(1));
                }
                Block::EnhancedPacket(epb) => {
                    // pcap-file hands the raw 64-bit timestamp as "nanoseconds".
                    let ticks = epb.timestamp.as_nanos();
                    let hz = resolution
                        .get(epb.interface_id as usize)
                        .copied()
                        .unwrap_or(1_000_000) as u128;
                    let ns = (ticks * 1_000_000_000 / hz) as u64;
                    push(&mut cap, &epb.data, epb.original_len as usize, ns);
                }
                Block::SimplePacket(spb) => push(&mut cap, &spb.data, spb.original_len as usize, 0),
                _ => {}
            }
        }
    } else {
        let mut r = PcapReader::new(reader).map_err(fmt)?;
        let header = r.header();
        if header.datalink != DataLink::ETHERNET {
            return Err(CaptureError::LinkType {
                path: p.clone(),
                linktype: format!("{:?}", header.datalink),
            });
        }
        let frac_ns: u64 = match header.ts_resolution {
            pcap_file::TsResolution::MicroSecond => 1000,
            pcap_file::TsResolution::NanoSecond => 1,
        };
        // Raw packets: the typed reader refuses snapped captures (orig_len > snaplen).
        while let Some(pkt) = r.next_raw_packet() {
            let pkt = match pkt {
                Ok(p) => p,
                Err(e) => {
                    cap.cut_short = Some(e.to_string());
                    break;
                }
            };
            let ns = pkt.ts_sec as u64 * 1_000_000_000 + pkt.ts_frac as u64 * frac_ns;
            push(&mut cap, &pkt.data, pkt.orig_len as usize, ns);
        }
    }
    Ok(cap)
}

fn push(cap: &mut Capture, frame: &[u8], orig_len: usize, ns: u64) {
    let r = frame_record(frame, orig_len, ns, &mut cap.hosts);
    if r.flags & crate::record::FLAG_BROKEN != 0 {
        cap.broken += 1;
    }
    cap.records.push(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A microsecond pcap of `n` 60-byte Ethernet frames, one a millisecond.
    fn pcap(n: u32) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            match w {
                0x0004_0002 => {
                    b.extend(2u16.to_le_bytes());
                    b.extend(4u16.to_le_bytes());
                }
                _ => b.extend(w.to_le_bytes()),
            }
        }
        for i in 0..n {
            for w in [1_000u32, i * 1000, 60, 60] {
                b.extend(w.to_le_bytes());
            }
            let mut frame = [0u8; 60];
            frame[12..14].copy_from_slice(&[0x08, 0x00]);
            b.extend(frame);
        }
        b
    }

    #[test]
    fn a_whole_capture_reads_every_frame() {
        let cap = read_capture_from(&pcap(3)[..], "t").unwrap();
        assert_eq!(cap.records.len(), 3);
        assert_eq!(cap.cut_short, None);
        assert_eq!(cap.records[2].time, 1_000_000_000_000 + 2_000_000);
    }

    #[test]
    fn a_capture_cut_short_in_a_frame_is_read_up_to_the_cut_and_says_so() {
        let whole = pcap(3);
        let cut = &whole[..whole.len() - 30];
        let cap = read_capture_from(cut, "t").unwrap();
        assert_eq!(cap.records.len(), 2);
        assert!(cap.cut_short.is_some());
        // Cut in a record's header too.
        let cut = &whole[..whole.len() - 70];
        let cap = read_capture_from(cut, "t").unwrap();
        assert_eq!(cap.records.len(), 2);
        assert!(cap.cut_short.is_some());
    }

    #[test]
    fn a_file_that_is_no_capture_is_an_error() {
        assert!(read_capture_from(&b"hello, world: no capture at all"[..], "t").is_err());
        assert!(read_capture_from(&b"he"[..], "t").is_err());
        assert!(
            read_capture_from(&pcap(1)[..10], "t").is_err(),
            "cut in the header"
        );
    }
}
