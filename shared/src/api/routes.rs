//! A function's routes, with their OpenAPI description built only where it is served.
//!
//! Handlers are annotated with `#[utoipa::path]`, and `utoipa_axum::routes!` collects them
//! with their description: devstack merges every function's into the API document. A
//! Lambda function serves no document, yet `routes!` builds the description (operations,
//! schemas, the doc comments as strings) when the router is built, so all of that code
//! was linked into every API function. [`api_routes!`](crate::api_routes) collects the
//! same handlers as a [`RouteGroup`] that holds both ways of adding them; a function lists
//! its routes once, generic over [`ApiRoutes`], and:
//!
//! - `openapi_router()` adds them to a `utoipa_axum` [`OpenApiRouter`] (devstack, the
//!   document's tests), which builds the description as before;
//! - `app()` adds them to a plain [`axum::Router`] (Lambda, the function's tests): only the
//!   path and methods of each handler are read, so the description's code is never
//!   instantiated and is not in the binary.
//!
//! Both routers get the same paths, methods and handlers.

use std::convert::Infallible;

use axum::{
    Router,
    extract::Request,
    response::IntoResponse,
    routing::{MethodRouter, Route},
};
use tower::{Layer, Service};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

/// The handlers of one path, as [`api_routes!`](crate::api_routes) collects them: `document`
/// gives them with their OpenAPI description (`utoipa_axum::routes!`), `add` adds them to a
/// plain router.
#[derive(Debug)]
pub struct RouteGroup<D, A> {
    document: D,
    add: A,
}

impl<D, A> RouteGroup<D, A> {
    /// A group from its two ways of being added (what `api_routes!` expands to).
    pub fn new(document: D, add: A) -> Self {
        Self { document, add }
    }
}

/// A router that a function's routes are added to: [`OpenApiRouter`] (with the OpenAPI
/// description) or [`axum::Router`] (without). The function's `routes` function is generic
/// over it.
pub trait ApiRoutes<S>: Sized {
    /// Adds one group of handlers.
    fn add<D, A>(self, group: RouteGroup<D, A>) -> Self
    where
        D: FnOnce() -> UtoipaMethodRouter<S>,
        A: FnOnce(Router<S>) -> Router<S>;

    /// Merges another router of the same kind (its own layers stay its own).
    fn merge(self, other: Self) -> Self;

    /// Wraps the routes added so far in `layer`.
    fn layer<L>(self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static;
}

impl<S> ApiRoutes<S> for OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn add<D, A>(self, group: RouteGroup<D, A>) -> Self
    where
        D: FnOnce() -> UtoipaMethodRouter<S>,
        A: FnOnce(Router<S>) -> Router<S>,
    {
        self.routes((group.document)())
    }

    fn merge(self, other: Self) -> Self {
        OpenApiRouter::merge(self, other)
    }

    fn layer<L>(self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        OpenApiRouter::layer(self, layer)
    }
}

impl<S> ApiRoutes<S> for Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn add<D, A>(self, group: RouteGroup<D, A>) -> Self
    where
        D: FnOnce() -> UtoipaMethodRouter<S>,
        A: FnOnce(Router<S>) -> Router<S>,
    {
        (group.add)(self)
    }

    fn merge(self, other: Self) -> Self {
        Router::merge(self, other)
    }

    fn layer<L>(self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        Router::layer(self, layer)
    }
}

/// Routes `method_router` at each of `paths` (the handlers' `#[utoipa::path]` paths, all
/// one path in practice), as `OpenApiRouter::routes` does: an empty path is `/`.
pub fn route<S>(router: Router<S>, paths: &[String], method_router: MethodRouter<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut distinct: Vec<&str> = Vec::with_capacity(paths.len());
    for path in paths {
        let path = if path.is_empty() { "/" } else { path.as_str() };
        if !distinct.contains(&path) {
            distinct.push(path);
        }
    }
    distinct.into_iter().fold(router, |router, path| {
        router.route(path, method_router.clone())
    })
}

/// Collects handlers annotated with `#[utoipa::path]` that share one path, like
/// `utoipa_axum::routes!`, into a [`RouteGroup`](crate::api::routes::RouteGroup): add it
/// with [`ApiRoutes::add`](crate::api::routes::ApiRoutes::add). The calling crate depends
/// on `axum`, `utoipa` and `utoipa-axum`.
#[macro_export]
macro_rules! api_routes {
    // Handlers as plain `a::b::c` tokens (not `$handler:path`): utoipa_axum's macro takes
    // the path apart to name the `__path_c` type, which it cannot do with a parsed path.
    ( $( $( $segment:ident )::+ ),+ $(,)? ) => {
        $crate::api::routes::RouteGroup::new(
            || ::utoipa_axum::routes!( $( $( $segment )::+ ),+ ),
            |router| {
                #[allow(unused_imports)]
                use ::utoipa_axum::PathItemExt as _;
                let mut paths: ::std::vec::Vec<::std::string::String> = ::std::vec::Vec::new();
                let mut method_router = ::axum::routing::MethodRouter::new();
                $(
                    paths.push(::utoipa_axum::routes!( @path [path()] of $( $segment )::+ ));
                    for method in ::utoipa_axum::routes!( @path [methods()] of $( $segment )::+ ) {
                        method_router =
                            method_router.on(method.to_method_filter(), $( $segment )::+);
                    }
                )+
                $crate::api::routes::route(router, &paths, method_router)
            },
        )
    };
}
