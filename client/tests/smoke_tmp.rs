use secure_ipc::{Backend, Channel, Options};
#[test]
fn smoke() {
    let o = Options::new().backend(Backend::Userspace).slots(8).slot_size(256);
    let (mut otx, mut orx) = Channel::create("smoke-t", &o).unwrap();
    let h = std::thread::spawn(move || {
        let (mut ptx, mut prx) = Channel::attach("smoke-t", &o).unwrap();
        for i in 0..1000u32 {
            let m = prx.recv().unwrap();
            assert_eq!(m.payload(), &i.to_le_bytes());
            assert_eq!(m.seq(), i as u64);
            drop(m);
            ptx.send(&i.to_be_bytes()).unwrap();
        }
        prx
    });
    for i in 0..1000u32 {
        otx.send(&i.to_le_bytes()).unwrap();
        let m = orx.recv().unwrap();
        assert_eq!(m.payload(), &i.to_be_bytes());
    }
    let prx = h.join().unwrap();
    println!("{:?}", orx.stats().unwrap());
    println!("{:?}", orx.peer_credentials().unwrap());
    drop(prx);
}
