
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_at_least_once_fire_lost_with_its_worker_is_sent_to_another_worker() {
    let addr = free_addr();
    let node = node_listening("node-d", addr).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, FireId)>();
    // Equal loads: the first fire goes to the lower id, w-a, whose handler never ends.
    let start = |id: &'static str, hang: bool| {
        let tx = tx.clone();
        Worker::builder()
            .join([addr.to_string()])
            .group("redelivery")
            .id(id)
            .cookie("sesame")
            .handler("work", move |ctx| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((id.to_owned(), ctx.fire));
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    Ok(())
                }
            })
            .start()
    };
    let w_a = start("w-a", true).await.expect("w-a joins");
    let _w_b = start("w-b", false).await.expect("w-b joins");
    let mut spec = on_group(
        JobSpec::new(
            "work",
            Schedule::parse("* * * * * *").unwrap(),
            Target::Handler(HandlerTarget::new("work")),
        ),
        "redelivery",
    );
    spec.delivery = campanile::job::Delivery::AtLeastOnce;
    let job = node.create(spec).await.unwrap();
    let (first, fire) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a worker runs the first fire")
        .unwrap();
    assert_eq!(first, "w-a");
    // The worker goes away mid-run: its link closes.
    w_a.stop().await;
    let (second, again) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the fire is sent again")
        .unwrap();
    assert_eq!((second.as_str(), &again), ("w-b", &fire));
    let record = until_record(&node, &job.id, Duration::from_secs(10), |r| {
        r.scheduled_ms == fire.scheduled_ms
    })
    .await;
    assert_eq!(record.outcome, Outcome::Succeeded, "{record:?}");
    let reason = record.reason.unwrap_or_default();
    assert!(
        reason.starts_with("redelivered: worker w-a was lost mid-run")
            && reason.ends_with("worker w-b"),
        "{reason}"
    );
    node.shutdown(Duration::from_secs(5)).await.unwrap();
}
