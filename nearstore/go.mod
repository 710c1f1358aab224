module github.com/golangcollege/memstore/nearstore

go 1.26.0

replace github.com/golangcollege/memstore => ../

require (
	github.com/golangcollege/memstore v0.0.0-00010101000000-000000000000
	github.com/redis/rueidis v1.0.80
)

require golang.org/x/sys v0.50.0 // indirect
