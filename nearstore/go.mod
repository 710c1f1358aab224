module github.com/golangcollege/memstore/nearstore

go 1.26.0

replace github.com/golangcollege/memstore => ../

require (
	github.com/alexedwards/scs/redisstore v0.0.0-20251002162104-209de6e426de
	github.com/alexedwards/scs/v2 v2.9.0
	github.com/golangcollege/memstore v0.0.0-00010101000000-000000000000
	github.com/gomodule/redigo v1.9.3
	github.com/redis/rueidis v1.0.80
)

require golang.org/x/sys v0.50.0 // indirect
