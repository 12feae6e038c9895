// Starts Swagger UI on /docs. It lives in a file because the page's policy runs no inline
// script; the page says where the OpenAPI document is (data-spec-url).
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // Unset, Swagger UI may ask a public validator about the document: nothing leaves the page.
    validatorUrl: null,
  });
})();
