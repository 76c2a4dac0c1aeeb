// Swagger UI at /docs: the bundle the app serves (/static/docs) renders the app's /openapi.json.
// A file of its own rather than an inline script, so the page keeps the strict CSP (script-src 'self').
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
