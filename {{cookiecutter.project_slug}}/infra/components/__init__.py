"""One ComponentResource per concern of the service's AWS infrastructure."""
