// Boots Swagger UI on /docs with the origin's own OpenAPI document. A file of its own, not an inline
// script, so the page keeps a Content-Security-Policy without 'unsafe-inline'.
window.addEventListener('load', () => {
    window.ui = SwaggerUIBundle({
        url: '/openapi.json',
        dom_id: '#swagger-ui',
        deepLinking: true,
        // No request to the public validator service: the page works with no internet.
        validatorUrl: null,
        docExpansion: 'list',
        defaultModelsExpandDepth: 0,
    });
});
