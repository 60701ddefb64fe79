//! The greeter backend answers `helloworld.Greeter/SayHello` with its id and
//! reports SERVING on the standard `grpc.health.v1.Health` service.

use podlb_backend::{GreeterClient, backend_of, pb::HelloRequest};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[tokio::test]
async fn says_hello_with_its_id_and_reports_serving() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(podlb_backend::serve(listener, "b7", async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let reply = GreeterClient::new(channel.clone())
        .say_hello(HelloRequest {
            name: "world".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.message, "Hello world from b7");
    assert_eq!(backend_of(&reply), "b7");

    for service in ["", "helloworld.Greeter"] {
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
