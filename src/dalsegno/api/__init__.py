"""The REST API: the manager's HTTP face over the service layer (`create_app`)."""
