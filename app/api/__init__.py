"""The REST API: thin routes over the services, problem+json errors, bearer-token roles."""
