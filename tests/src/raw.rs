//! Calling any unary method by its path with pre-encoded request bytes, ignoring the reply's
//! content: enough to learn the status code a principal gets (the authorization matrix).

use prost::bytes::{Buf, BufMut};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

/// A codec that passes bytes through.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// Calls `path` (`/pkg.Service/Method`) with `body` and an optional bearer token.
pub async fn call(
    channel: tonic::transport::Channel,
    path: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(body);
    if let Some(t) = token {
        let value = format!("Bearer {t}").parse().map_err(|_| Status::invalid_argument("token"))?;
        request.metadata_mut().insert("authorization", value);
    }
    let path =
        http::uri::PathAndQuery::try_from(path).map_err(|e| Status::invalid_argument(e.to_string()))?;
    grpc.unary(request, path, RawCodec).await.map(tonic::Response::into_inner)
}

/// How a method streams, as its descriptor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Unary,
    ServerStreaming,
    ClientStreaming,
    /// A server stream that does not end (a feed): its first message is the answer.
    Watch,
}

impl Shape {
    /// The shape of a method from its descriptor (`Watch...` server streams are feeds).
    pub fn of(method: &prost_types::MethodDescriptorProto) -> Option<Self> {
        Some(match (method.client_streaming(), method.server_streaming()) {
            (false, false) => Self::Unary,
            (false, true) if method.name().starts_with("Watch") => Self::Watch,
            (false, true) => Self::ServerStreaming,
            (true, false) => Self::ClientStreaming,
            (true, true) => return None,
        })
    }
}

/// Calls `path` of any shape with one request message (`body`) and reads the whole answer;
/// returns the number of bytes received.
pub async fn call_shaped(
    channel: tonic::transport::Channel,
    path: &str,
    shape: Shape,
    body: Vec<u8>,
    token: Option<&str>,
) -> Result<usize, Status> {
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let path =
        http::uri::PathAndQuery::try_from(path).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let authorize = |metadata: &mut tonic::metadata::MetadataMap| -> Result<(), Status> {
        if let Some(t) = token {
            let value = format!("Bearer {t}").parse().map_err(|_| Status::invalid_argument("token"))?;
            metadata.insert("authorization", value);
        }
        Ok(())
    };
    match shape {
        Shape::Unary => {
            let mut request = tonic::Request::new(body);
            authorize(request.metadata_mut())?;
            Ok(grpc.unary(request, path, RawCodec).await?.into_inner().len())
        }
        Shape::ClientStreaming => {
            let mut request = tonic::Request::new(futures::stream::iter([body]));
            authorize(request.metadata_mut())?;
            Ok(grpc.client_streaming(request, path, RawCodec).await?.into_inner().len())
        }
        Shape::ServerStreaming | Shape::Watch => {
            let mut request = tonic::Request::new(body);
            authorize(request.metadata_mut())?;
            let mut stream = grpc.server_streaming(request, path, RawCodec).await?.into_inner();
            let mut received = 0;
            while let Some(message) = stream.message().await? {
                received += message.len();
                if shape == Shape::Watch {
                    break;
                }
            }
            Ok(received)
        }
    }
}
