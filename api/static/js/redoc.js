// ReDoc at /redoc: the bundle the app serves (/static/docs) renders the app's /openapi.json.
// ReDoc styles itself with style elements it creates; the CSP allows them only with this answer's
// nonce (from the shell's data-style-nonce), which ReDoc puts on each of them.
const area = document.getElementById("redoc");
Redoc.init("/openapi.json", { nonce: area.dataset.styleNonce }, area);
