//! The simulated fleet's world: hosts, their VMs, the applications those VMs run and
//! what each directed host pair has available. An application is a group of VMs spread
//! over random hosts whose traffic has one of three shapes (ring, 2-D torus mesh,
//! all-to-all), each edge a demand both ways at its own rate. Deterministic: the same
//! seed and sizes give the same fleet on every machine.

use std::collections::HashMap;
use std::sync::RwLock;

use analysis::vadapt::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostIx(pub usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VmIx(pub usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Ring,
    Mesh,
    AllToAll,
}

impl Topology {
    pub fn name(self) -> &'static str {
        match self {
            Topology::Ring => "ring",
            Topology::Mesh => "mesh",
            Topology::AllToAll => "all-to-all",
        }
    }
}

pub struct Host {
    pub name: String,
    pub underlay_ip: String,
    pub vms: Vec<VmIx>,
}

pub struct Vm {
    pub mac: String,
    pub ip: String,
    pub port: String,
    pub host: HostIx,
}

/// Traffic from one VM to another, at a base rate (Mbit/s).
pub struct Demand {
    pub src: VmIx,
    pub dst: VmIx,
    pub mbps: f64,
}

pub struct App {
    pub topology: Topology,
    pub vms: Vec<VmIx>,
}

pub struct Scenario {
    pub hosts: Vec<Host>,
    pub vms: Vec<Vm>,
    pub apps: Vec<App>,
    pub demands: Vec<Demand>,
    /// Demands by the host of their source VM, and of their destination VM.
    pub from_host: Vec<Vec<usize>>,
    pub to_host: Vec<Vec<usize>>,
    pub vm_by_mac: HashMap<String, VmIx>,
    pub nominal_mbps: f64,
}

/// Application sizes, taken in turn with the shapes: every shape meets every size that
/// suits it (all-to-all only up to 8 VMs: its demands grow as the square).
const SIZES: [usize; 3] = [4, 8, 16];

impl Scenario {
    pub fn new(hosts: usize, vms_per_host: usize, nominal_mbps: f64, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let hosts_v: Vec<Host> = (0..hosts)
            .map(|i| Host {
                name: format!("h{i:04}"),
                underlay_ip: format!("198.18.{}.{}", (i + 1) >> 8, (i + 1) & 255),
                vms: Vec::new(),
            })
            .collect();
        let mut s = Scenario {
            hosts: hosts_v,
            vms: Vec::new(),
            apps: Vec::new(),
            demands: Vec::new(),
            from_host: vec![Vec::new(); hosts],
            to_host: vec![Vec::new(); hosts],
            vm_by_mac: HashMap::new(),
            nominal_mbps,
        };
        for h in 0..hosts {
            for k in 0..vms_per_host {
                s.add_vm(HostIx(h), k);
            }
        }
        let mut order: Vec<VmIx> = (0..s.vms.len()).map(VmIx).collect();
        shuffle(&mut order, &mut rng);
        s.group(order, &mut rng);
        s
    }

    fn add_vm(&mut self, h: HostIx, k: usize) {
        let g = self.vms.len() + 1;
        let (a, b, c) = ((g >> 16) & 255, (g >> 8) & 255, g & 255);
        let vm = Vm {
            mac: format!("02:00:{a:02x}:{b:02x}:{c:02x}:01"),
            ip: format!("10.{a}.{b}.{c}"),
            port: format!("p{k}"),
            host: h,
        };
        self.vm_by_mac.insert(vm.mac.clone(), VmIx(self.vms.len()));
        self.hosts[h.0].vms.push(VmIx(self.vms.len()));
        self.vms.push(vm);
    }

    /// Cuts the shuffled VMs into applications and gives each its demands.
    fn group(&mut self, order: Vec<VmIx>, rng: &mut Rng) {
        let shapes = [Topology::Ring, Topology::Mesh, Topology::AllToAll];
        let mut at = 0;
        let mut n = 0;
        while at < order.len() {
            let topology = shapes[n % shapes.len()];
            let mut size = SIZES[(n / shapes.len()) % SIZES.len()];
            if topology == Topology::AllToAll {
                size = size.min(8);
            }
            let mut size = size.min(order.len() - at);
            if order.len() - at - size == 1 {
                size += 1; // a VM alone would have no one to talk to
            }
            let vms = order[at..at + size].to_vec();
            at += size;
            n += 1;
            for (a, b) in edges(topology, vms.len()) {
                let mbps = 5.0 + 45.0 * rng.unit();
                self.add_demand(vms[a], vms[b], mbps);
                self.add_demand(vms[b], vms[a], mbps);
            }
            self.apps.push(App { topology, vms });
        }
    }

    fn add_demand(&mut self, src: VmIx, dst: VmIx, mbps: f64) {
        let (hs, hd) = (self.vms[src.0].host, self.vms[dst.0].host);
        self.from_host[hs.0].push(self.demands.len());
        self.to_host[hd.0].push(self.demands.len());
        self.demands.push(Demand { src, dst, mbps });
    }

    pub fn host_of(&self, v: VmIx) -> HostIx {
        self.vms[v.0].host
    }

    pub fn host_by_name(&self, name: &str) -> Option<HostIx> {
        let i: usize = name.strip_prefix('h')?.parse().ok()?;
        (i < self.hosts.len() && self.hosts[i].name == name).then_some(HostIx(i))
    }
}

/// The undirected edges of an application of `n` VMs (indices into its VM list).
pub fn edges(t: Topology, n: usize) -> Vec<(usize, usize)> {
    let mut e = Vec::new();
    match t {
        _ if n < 2 => {}
        Topology::Ring if n == 2 => e.push((0, 1)),
        Topology::Ring => e.extend((0..n).map(|i| (i, (i + 1) % n))),
        Topology::AllToAll => {
            for a in 0..n {
                e.extend((a + 1..n).map(|b| (a, b)));
            }
        }
        Topology::Mesh => {
            // A torus of r rows and c columns (r the largest divisor up to sqrt n):
            // each VM to its right and lower neighbour.
            let r = (1..=n)
                .filter(|r| n.is_multiple_of(*r) && r * r <= n)
                .max()
                .unwrap_or(1);
            let c = n / r;
            for i in 0..n {
                let (y, x) = (i / c, i % c);
                let right = y * c + (x + 1) % c;
                let down = ((y + 1) % r) * c + x;
                for j in [right, down] {
                    let pair = (i.min(j), i.max(j));
                    if i != j && !e.contains(&pair) {
                        e.push(pair);
                    }
                }
            }
        }
    }
    e
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// What each directed host pair has available, Mbit/s: nominal unless changed.
pub struct Network {
    nominal: f64,
    avail: RwLock<HashMap<(HostIx, HostIx), f64>>,
}

impl Network {
    pub fn new(nominal: f64) -> Self {
        Network {
            nominal,
            avail: RwLock::new(HashMap::new()),
        }
    }

    pub fn avail(&self, a: HostIx, b: HostIx) -> f64 {
        let m = self.avail.read().unwrap_or_else(|e| e.into_inner());
        m.get(&(a, b)).copied().unwrap_or(self.nominal)
    }

    pub fn set(&self, a: HostIx, b: HostIx, mbps: f64) {
        let mut m = self.avail.write().unwrap_or_else(|e| e.into_inner());
        m.insert((a, b), mbps);
    }

    pub fn changed(&self, a: HostIx, b: HostIx) -> bool {
        let m = self.avail.read().unwrap_or_else(|e| e.into_inner());
        m.contains_key(&(a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_have_their_edges() {
        assert_eq!(edges(Topology::Ring, 4).len(), 4);
        assert_eq!(edges(Topology::AllToAll, 8).len(), 28);
        // 4x4 torus: 2 edges per VM; 2x2: the wrap-around meets the neighbour.
        assert_eq!(edges(Topology::Mesh, 16).len(), 32);
        assert_eq!(edges(Topology::Mesh, 4).len(), 4);
        assert!(edges(Topology::Ring, 1).is_empty());
    }

    #[test]
    fn a_fleet_is_the_same_from_the_same_seed_and_every_vm_talks() {
        let (a, b) = (
            Scenario::new(50, 4, 1000.0, 7),
            Scenario::new(50, 4, 1000.0, 7),
        );
        assert_eq!(a.vms.len(), 200);
        assert_eq!(a.demands.len(), b.demands.len());
        for (x, y) in a.demands.iter().zip(&b.demands) {
            assert_eq!((x.src, x.dst, x.mbps), (y.src, y.dst, y.mbps));
        }
        let talks = |v: usize| a.demands.iter().any(|d| d.src.0 == v);
        assert!((0..200).all(talks));
        let in_apps: usize = a.apps.iter().map(|p| p.vms.len()).sum();
        assert_eq!(in_apps, 200);
        assert_eq!(a.host_by_name("h0042"), Some(HostIx(42)));
        assert_eq!(a.host_by_name("h0050"), None);
    }
}
