window.addEventListener("load", function () {
  // validatorUrl null: Swagger UI would otherwise send the spec's URL to validator.swagger.io.
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                                validatorUrl: null });
});
