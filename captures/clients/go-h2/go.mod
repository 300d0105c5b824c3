module idemwatch/captures/go-h2

go 1.19
