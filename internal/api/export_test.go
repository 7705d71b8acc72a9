package api

// Routes is the route table, for the external tests (package api_test),
// which build a whole server through internal/server and so cannot be in
// package api.
var Routes = routes

// OpenAPIDocument is the embedded OpenAPI document, for the conformance
// check of the external tests.
var OpenAPIDocument = openapiDoc
